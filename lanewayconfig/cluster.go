package lanewayconfig

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ClusterSchemes are the URL schemes of a Redis Cluster broker.
var ClusterSchemes = []string{"redis+cluster", "rediss+cluster"}

// IsClusterURL reports whether url names a Redis Cluster
// ("redis+cluster://" or "rediss+cluster://").
func IsClusterURL(u string) bool {
	for _, s := range ClusterSchemes {
		if strings.HasPrefix(strings.ToLower(u), s+"://") {
			return true
		}
	}
	return false
}

// ParseClusterURL reads "redis+cluster://[user[:password]@]h1:p1,h2:p2[/0][?opt=v]"
// into go-redis cluster options. A cluster has one database, so a database
// number other than 0 is refused. The error never holds the password.
func ParseClusterURL(raw string) (*redis.ClusterOptions, error) {
	if !IsClusterURL(raw) {
		return nil, fmt.Errorf("expected a %q or %q URL", "redis+cluster://", "rediss+cluster://")
	}
	scheme, rest, _ := strings.Cut(raw, "://")
	scheme = strings.TrimSuffix(strings.ToLower(scheme), "+cluster")
	var userinfo string
	if at := strings.LastIndex(strings.SplitN(rest, "/", 2)[0], "@"); at >= 0 {
		userinfo, rest = rest[:at], rest[at+1:]
	}
	hosts, tail := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		hosts, tail = rest[:i], rest[i:]
	}
	path, query, _ := strings.Cut(tail, "?")
	if path != "" && path != "/" && path != "/0" {
		return nil, fmt.Errorf("database %q: a Redis Cluster has only database 0; remove the path", strings.TrimPrefix(path, "/"))
	}
	var addrs []string
	for _, h := range strings.Split(hosts, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("node %q: expected host:port, e.g. 127.0.0.1:7000", h)
		}
		addrs = append(addrs, h)
	}
	if len(addrs) == 0 {
		return nil, errors.New("no nodes: list at least one host:port, e.g. redis+cluster://10.0.0.1:7000,10.0.0.2:7000")
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	for _, a := range addrs[1:] {
		q.Add("addr", a)
	}
	u := scheme + "://"
	if userinfo != "" {
		u += userinfo + "@"
	}
	u += addrs[0]
	if enc := q.Encode(); enc != "" {
		u += "?" + enc
	}
	opts, err := redis.ParseClusterURL(u)
	if err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), "redis: "))
	}
	return opts, nil
}
