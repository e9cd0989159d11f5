package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ACLCommands is the command part of a least-privilege Redis ACL user for
// Laneway, in ACL SETUSER syntax: every command the Broker sends (the
// engine's and the operator tools'), and nothing else. HELLO and AUTH need
// no grant. Keep it in step with the Broker: TestACLCommandsSuffice runs
// every Broker method as a user holding exactly these commands.
const ACLCommands = "-@all +ping +info +select +client|id +client|unblock +wait" +
	" +xadd +xgroup|create +xgroup|delconsumer +xreadgroup +xack +xpending +xclaim +xautoclaim" +
	" +xlen +xrange +xdel +xtrim +xinfo|groups +xinfo|consumers" +
	" +scan +set +mget +del +evalsha +eval" +
	// The lane controls (pauses, throttles, the governor) live in hashes
	// and keys under the engine's prefix; the rate limiter's script reads
	// the server's clock.
	" +get +hset +hsetnx +hdel +hgetall +expire +time"

// Refusal is one command the server refused with NOPERM.
type Refusal struct {
	Command string // as in ACLCommands, e.g. "xautoclaim" or "client|unblock"
	Key     string // the key it was tried on; "" for commands without keys
	Err     string // the server's message
}

// MissingPermissions tries every command of ACLCommands in a form that
// changes nothing (on a key that does not exist, or an id no entry has) and
// returns those the connected user may not run. streams are keys the user
// must reach (the domain's primary streams; each is tried with a read and a
// no-op write, and the first one's "<stream>:laneway-acl-probe" with every
// stream command); key is a key under the engine's own prefix (tried with
// SET XX, MGET, DEL, GET, HGETALL, HDEL and EXPIRE; HSET and HSETNX have no
// form that writes nothing and are not tried). Other errors than NOPERM are expected (no such key,
// NOGROUP) and ignored; a connection failure is returned.
func (b *Broker) MissingPermissions(ctx context.Context, streams []string, key string) ([]Refusal, error) {
	c := b.client
	var out []Refusal
	try := func(command, k string, cmd redis.Cmder) error {
		err := cmd.Err()
		switch {
		case err == nil || errors.Is(err, redis.Nil):
			return nil
		case strings.HasPrefix(err.Error(), "NOPERM"):
			out = append(out, Refusal{Command: command, Key: k, Err: err.Error()})
			return nil
		case isServerErr(err):
			return nil
		default:
			return fmt.Errorf("redisbroker: check permissions on %s: %w", b.addr, err)
		}
	}
	type probe struct {
		name, key string
		cmd       redis.Cmder
	}
	probes := []probe{
		{"ping", "", c.Ping(ctx)},
		{"info", "", c.Info(ctx, "server")},
		{"client|id", "", c.ClientID(ctx)},
		{"client|unblock", "", c.ClientUnblock(ctx, 0)},
		{"wait", "", c.Do(ctx, "WAIT", 0, 1)},
		{"scan", "", c.Do(ctx, "SCAN", 0, "MATCH", key, "COUNT", 1)},
	}
	for _, s := range streams {
		probes = append(probes,
			probe{"xlen", s, c.XLen(ctx, s)},
			probe{"xack", s, c.XAck(ctx, s, "laneway-acl-probe", "0-1")})
	}
	if len(streams) > 0 {
		k := streams[0] + ":laneway-acl-probe"
		const g, cons = "laneway-acl-probe", "laneway-acl-probe"
		probes = append(probes,
			probe{"xadd", k, c.Do(ctx, "XADD", k, "NOMKSTREAM", "*", "data", "")},
			probe{"xgroup|create", k, c.Do(ctx, "XGROUP", "CREATE", k, g, "$")},
			probe{"xgroup|delconsumer", k, c.Do(ctx, "XGROUP", "DELCONSUMER", k, g, cons)},
			probe{"xreadgroup", k, c.Do(ctx, "XREADGROUP", "GROUP", g, cons, "COUNT", 1, "STREAMS", k, ">")},
			probe{"xpending", k, c.Do(ctx, "XPENDING", k, g)},
			probe{"xclaim", k, c.Do(ctx, "XCLAIM", k, g, cons, 0, "0-1")},
			probe{"xautoclaim", k, c.Do(ctx, "XAUTOCLAIM", k, g, cons, 0, "0-0", "COUNT", 1)},
			probe{"xrange", k, c.Do(ctx, "XRANGE", k, "-", "+", "COUNT", 1)},
			probe{"xdel", k, c.Do(ctx, "XDEL", k, "0-1")},
			probe{"xtrim", k, c.Do(ctx, "XTRIM", k, "MINID", "0-1")},
			probe{"xinfo|groups", k, c.Do(ctx, "XINFO", "GROUPS", k)},
			probe{"xinfo|consumers", k, c.Do(ctx, "XINFO", "CONSUMERS", k, g)},
			probe{"eval", k, c.Do(ctx, "EVAL", "return 0", 1, k)},
			probe{"evalsha", k, c.Do(ctx, "EVALSHA", "0000000000000000000000000000000000000000", 1, k)},
		)
	}
	probes = append(probes,
		probe{"set", key, c.Do(ctx, "SET", key, "", "XX")},
		probe{"mget", key, c.Do(ctx, "MGET", key)},
		probe{"del", key, c.Do(ctx, "DEL", key)},
		probe{"get", key, c.Do(ctx, "GET", key)},
		probe{"hgetall", key, c.Do(ctx, "HGETALL", key)},
		probe{"hdel", key, c.Do(ctx, "HDEL", key, "f")},
		probe{"expire", key, c.Do(ctx, "EXPIRE", key, 60)},
		probe{"time", "", c.Do(ctx, "TIME")},
		// The rate limiter's keys carry its own prefix before the engine's.
		probe{"get", "rate:" + key, c.Do(ctx, "GET", "rate:"+key)},
	)
	for _, p := range probes {
		if err := try(p.name, p.key, p.cmd); err != nil {
			return nil, err
		}
	}
	return out, nil
}
