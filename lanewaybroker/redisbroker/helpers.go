package redisbroker

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/laneway/laneway/lanewaybroker"
)

// groupErr wraps err from a group command, adding ErrNoGroup for NOGROUP.
func (b *Broker) groupErr(op, stream, group string, err error) error {
	if isNoGroup(err) {
		return fmt.Errorf("redisbroker: %s: group %q on %q: %w: %w", op, group, stream, lanewaybroker.ErrNoGroup, err)
	}
	return fmt.Errorf("redisbroker: %s: group %q on %q: %w", op, group, stream, err)
}

func isNoGroup(err error) bool {
	// Plain replies start with NOGROUP; errors raised inside a script carry
	// it further in.
	return err != nil && strings.Contains(err.Error(), "NOGROUP")
}

func isNoSuchKey(err error) bool {
	return err != nil && strings.Contains(strings.ToLower(err.Error()), "no such key")
}

func toEntries(msgs []redis.XMessage) []lanewaybroker.Entry {
	if len(msgs) == 0 {
		return nil
	}
	out := make([]lanewaybroker.Entry, len(msgs))
	for i, m := range msgs {
		if len(m.Values) == 1 {
			if d, ok := m.Values["data"].(string); ok {
				// The engine's own kind of entry: no second map per entry.
				out[i] = lanewaybroker.Entry{ID: m.ID, Data: d}
				continue
			}
		}
		fields := make(map[string]string, len(m.Values))
		for k, v := range m.Values {
			switch v := v.(type) {
			case string:
				fields[k] = v
			case nil:
				fields[k] = ""
			default:
				fields[k] = fmt.Sprint(v)
			}
		}
		out[i] = lanewaybroker.Entry{ID: m.ID, Data: fields["data"], Fields: fields}
	}
	return out
}

// ceilMs rounds d up to whole milliseconds, the unit Redis takes: a minimum
// idle time must never shrink to less than asked.
func ceilMs(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return (d + time.Millisecond - 1).Truncate(time.Millisecond)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func countOr(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

func majorVersion(v string) (int, bool) {
	major, _, _ := strings.Cut(v, ".")
	n, err := strconv.Atoi(major)
	return n, err == nil
}

// isMiniredisInfoErr recognises miniredis's answer to INFO server.
func isMiniredisInfoErr(err error) bool {
	return strings.Contains(err.Error(), "section (server) is not supported")
}
