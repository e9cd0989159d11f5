package inspect

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/laneway/laneway/internal/redisurl"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
	"github.com/laneway/laneway/lanewayconfig"
)

// Least-privilege Redis users.
//
// A domain's engine and the operator commands touch only the domain's
// streams (each category, its lanes, their DLQs: "<category>" and
// "<category>:*"), the engine's own keys under "laneway:" (heartbeats, lane
// controls) and the rate limiter's under "rate:laneway:",
// with the commands of redisbroker.ACLCommands. ACLRules turns that into
// ACL SETUSER rules; docs/operations.md shows the line for the example
// domain, checked against ACLSetUser by a test, and doctor prints it as the
// fix when a permission is missing.

// KeyPrefix is the prefix of the keys the engine keeps besides streams
// (laneway.HeartbeatPrefix is under it).
const KeyPrefix = "laneway:"

// RateKeyPrefix is what the backfill rate limiter puts before its keys
// (which are under KeyPrefix): "rate:laneway:lanes:...".
const RateKeyPrefix = "rate:"

// aclProbeKey is the non-stream key doctor's permission check tries; it is
// never created.
const aclProbeKey = KeyPrefix + "doctor-acl-probe"

// ACLRules returns the ACL SETUSER rules (after the user name and
// password) that let a user run this domain's engine and operator
// commands and nothing else.
func ACLRules(t Topology) string {
	var cats []string
	for _, c := range t.Categories {
		if !slices.Contains(cats, c.Category) {
			cats = append(cats, c.Category)
		}
	}
	slices.Sort(cats)
	var pats []string
	for _, c := range cats {
		// Every stream of an aggregate category (its lanes, its command
		// streams, their DLQs) is its primary stream or starts with
		// "<primary>:" (under Protean naming the primary carries the
		// domain prefix, "customers::customer").
		primary := t.Naming().Primary(c)
		pats = append(pats, "~"+primary, "~"+primary+":*")
	}
	pats = append(pats, "~"+KeyPrefix+"*", "~"+RateKeyPrefix+KeyPrefix+"*")
	return "resetkeys " + strings.Join(pats, " ") + " resetchannels " + redisbroker.ACLCommands
}

// ACLSetUser is the complete command creating user with password for the
// domain of t.
func ACLSetUser(user, password string, t Topology) string {
	return "ACL SETUSER " + user + " on >" + password + " " + ACLRules(t)
}

// brokerUser is the Redis user name of the broker URL ("default" when the
// URL names none).
func brokerUser(br lanewayconfig.Broker) string {
	user := ""
	if redisurl.IsSentinel(br.URL) {
		if s, err := redisurl.ParseSentinel(br.URL); err == nil {
			user = s.Username
		}
	} else if u, err := url.Parse(br.URL); err == nil && u.User != nil {
		user = u.User.Username()
	}
	return orDefault(user, "default")
}

// permissionProber is implemented by the Redis broker.
type permissionProber interface {
	MissingPermissions(ctx context.Context, streams []string, key string) ([]redisbroker.Refusal, error)
}

func aclFix(cfg *lanewayconfig.Config, t Topology) string {
	return fmt.Sprintf("as a Redis admin, run: ACL SETUSER %s %s", brokerUser(cfg.Brokers[lanewayconfig.DefaultEntry]), ACLRules(t))
}

// aclCheck tries every command the engine and the operator commands use,
// in forms that change nothing, as the configured Redis user.
func aclCheck(ctx context.Context, in *Inspector, cfg *lanewayconfig.Config) (Check, error) {
	c := Check{ID: "redis_acl", Title: "Redis permissions"}
	p, ok := in.broker.(permissionProber)
	if !ok {
		c.Status, c.Detail = Pass, "the broker has no access control to check"
		return c, nil
	}
	var streams []string
	for _, cat := range in.topo.Categories {
		streams = append(streams, cat.Name, in.topo.Backfill(cat.Name), in.topo.Naming().DLQ(cat.Name))
	}
	refused, err := p.MissingPermissions(ctx, streams, aclProbeKey)
	if err != nil {
		return c, err
	}
	user := brokerUser(cfg.Brokers[lanewayconfig.DefaultEntry])
	if len(refused) == 0 {
		c.Status, c.Detail = Pass, fmt.Sprintf("Redis user %q may run every command Laneway uses on the domain's keys", user)
		return c, nil
	}
	var parts []string
	for _, r := range refused {
		if r.Key != "" {
			parts = append(parts, fmt.Sprintf("%s on %s", strings.ToUpper(r.Command), r.Key))
		} else {
			parts = append(parts, strings.ToUpper(r.Command))
		}
	}
	c.Status = Fail
	c.Detail = fmt.Sprintf("Redis user %q is refused (NOPERM): %s", user, strings.Join(dedupe(parts), ", "))
	c.Fix = aclFix(cfg, in.topo)
	return c, nil
}

// aclCheckUnreachable reports a connection refused for lack of permission
// (Open's PING, SELECT or INFO), when nothing else can be checked.
func aclCheckUnreachable(brokerErr error, cfg *lanewayconfig.Config, t Topology) (Check, bool) {
	if brokerErr == nil || !strings.Contains(brokerErr.Error(), "NOPERM") {
		return Check{}, false
	}
	return Check{ID: "redis_acl", Title: "Redis permissions", Status: Fail,
		Detail: fmt.Sprintf("Redis user %q may not connect: %s", brokerUser(cfg.Brokers[lanewayconfig.DefaultEntry]), brokerErr),
		Fix:    aclFix(cfg, t)}, true
}
