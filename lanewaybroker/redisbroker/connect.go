package redisbroker

import (
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/laneway/laneway/internal/redisurl"
)

// newClient builds the go-redis client for url: a plain client for
// "redis://" and "rediss://", a failover client for "redis+sentinel://"
// (it asks the Sentinels for the master and follows them when they promote
// a replica). addr names the server in messages.
func newClient(url string, opts Options) (client *redis.Client, addr string, err error) {
	if redisurl.IsSentinel(url) {
		s, err := redisurl.ParseSentinel(url)
		if err != nil {
			return nil, "", redactErr(fmt.Errorf("redisbroker: invalid Sentinel URL %q: %w", url, err), url)
		}
		fo := &redis.FailoverOptions{
			MasterName:            s.Master,
			SentinelAddrs:         s.Addrs,
			SentinelUsername:      s.SentinelUsername,
			SentinelPassword:      s.SentinelPassword,
			Username:              s.Username,
			Password:              s.Password,
			DB:                    s.DB,
			PoolSize:              opts.PoolSize,
			ReadTimeout:           opts.ReadTimeout,
			WriteTimeout:          opts.WriteTimeout,
			DialTimeout:           opts.ConnectTimeout,
			ClientName:            opts.ClientName,
			ContextTimeoutEnabled: true,
			TLSConfig:             opts.TLS,
		}
		addr = fmt.Sprintf("master %q of Sentinels %s", s.Master, strings.Join(s.Addrs, ","))
		return redis.NewFailoverClient(fo), addr, nil
	}
	ro, err := redis.ParseURL(url)
	if err != nil {
		return nil, "", redactErr(fmt.Errorf("redisbroker: invalid Redis URL %q: %w", url, err), url)
	}
	if ro.TLSConfig != nil && opts.TLS != nil {
		t := opts.TLS.Clone()
		if t.ServerName == "" {
			t.ServerName = ro.TLSConfig.ServerName
		}
		ro.TLSConfig = t
	}
	applyOptions(ro, opts)
	return redis.NewClient(ro), ro.Addr, nil
}
