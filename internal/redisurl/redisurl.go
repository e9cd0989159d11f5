// Package redisurl reads the Sentinel form of a broker URL,
//
//	redis+sentinel://[user:password@]host1:26379,host2:26379/MASTER_NAME[/DB][?sentinel_username=U&sentinel_password=P]
//
// shared by configuration validation and the broker's Open, so both accept
// exactly the same strings. The user and password log in to the Redis
// servers (master and replicas); Sentinels that require their own login
// take it from the query parameters. Errors never quote the password.
package redisurl

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// SentinelScheme is the URL scheme of a Sentinel-managed Redis.
const SentinelScheme = "redis+sentinel"

// Sentinel is a parsed Sentinel URL.
type Sentinel struct {
	Addrs            []string // host:port of each Sentinel
	Master           string   // the master name Sentinel monitors
	DB               int
	Username         string
	Password         string
	SentinelUsername string
	SentinelPassword string
}

// IsSentinel reports whether raw uses the Sentinel scheme.
func IsSentinel(raw string) bool { return strings.HasPrefix(raw, SentinelScheme+"://") }

// Example is a valid Sentinel URL, quoted in error messages.
const Example = "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster/0"

// ParseSentinel parses a Sentinel URL. url.Parse cannot be used for the
// authority: it holds several host:port pairs.
func ParseSentinel(raw string) (Sentinel, error) {
	var s Sentinel
	rest, ok := strings.CutPrefix(raw, SentinelScheme+"://")
	if !ok {
		return s, fmt.Errorf("expected a %q URL such as %q", SentinelScheme+"://", Example)
	}
	rest, query, _ := strings.Cut(rest, "?")
	auth, path, _ := strings.Cut(rest, "/")
	if at := strings.LastIndex(auth, "@"); at >= 0 {
		user, pass, hasPass := strings.Cut(auth[:at], ":")
		var err error
		if s.Username, err = url.PathUnescape(user); err != nil {
			return s, errors.New("the user name is not validly %-escaped")
		}
		if hasPass {
			if s.Password, err = url.PathUnescape(pass); err != nil {
				return s, errors.New("the password is not validly %-escaped")
			}
		}
		auth = auth[at+1:]
	}
	if auth == "" {
		return s, fmt.Errorf("no Sentinel address: list them as host:port separated by commas, e.g. %q", Example)
	}
	for _, a := range strings.Split(auth, ",") {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" {
			return s, fmt.Errorf("Sentinel address %q: want host:port, e.g. 127.0.0.1:26379", a)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return s, fmt.Errorf("Sentinel address %q: the port must be a number from 1 to 65535", a)
		}
		s.Addrs = append(s.Addrs, a)
	}
	master, db, hasDB := strings.Cut(path, "/")
	if master == "" {
		return s, fmt.Errorf("no master name: the path is /MASTER_NAME[/DB], e.g. %q", Example)
	}
	s.Master = master
	if hasDB && db != "" {
		n, err := strconv.Atoi(db)
		if err != nil || n < 0 {
			return s, fmt.Errorf("database %q: want a number such as 0 (the path is /MASTER_NAME/DB)", db)
		}
		s.DB = n
	}
	if query != "" {
		q, err := url.ParseQuery(query)
		if err != nil {
			return s, errors.New("the query string is not valid")
		}
		for k := range q {
			switch k {
			case "sentinel_username", "sentinel_password":
			default:
				return s, fmt.Errorf("unknown query parameter %q: only sentinel_username and sentinel_password are accepted", k)
			}
		}
		s.SentinelUsername, s.SentinelPassword = q.Get("sentinel_username"), q.Get("sentinel_password")
	}
	return s, nil
}
