package laneway

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode"

	"github.com/laneway/laneway/lanewayconfig"
)

// HandlerOption configures a Handler at NewHandler.
type HandlerOption func(*Handler)

// ConsumerGroup makes the handler read its streams in the consumer group
// group instead of one named after the handler. A handler taking over the
// work of a handler of another service (a Protean handler's group is its
// fully qualified name, e.g. "protean_customers.CustomerProjector") joins
// that group: both then share the entries, and the other can be switched
// off without a gap or a replay. [handlers.NAME] consumer_group in
// domain.toml overrides it.
func ConsumerGroup(group string) HandlerOption {
	return func(h *Handler) { h.group = group }
}

// Group is the consumer group the handler reads in when the configuration
// does not override it: the ConsumerGroup option, else the handler's name.
func (h *Handler) Group() string {
	if h.group != "" {
		return h.group
	}
	return h.name
}

// ConsumerGroups resolves the consumer group of every handler of the domain
// under cfg (a [handlers.NAME] consumer_group beats the ConsumerGroup
// option, which beats the handler's name), keyed by handler name. It
// rejects a [handlers.NAME] table naming no handler of the domain, and two
// handlers in one group: Redis gives each entry to one member of a group,
// so on a stream both read each would miss the entries the other took (and
// a group names one handler in the engine and the operator tools).
func (d *Domain) ConsumerGroups(cfg *lanewayconfig.Config) (map[string]string, error) {
	out := make(map[string]string, len(d.handlers))
	names := make([]string, 0, len(d.handlers))
	for _, h := range d.handlers {
		out[h.name] = h.Group()
		names = append(names, h.name)
	}
	var errs []error
	if cfg != nil {
		keys := make([]string, 0, len(cfg.Handlers))
		for k := range cfg.Handlers {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if _, ok := out[k]; !ok {
				errs = append(errs, fmt.Errorf("[handlers.%s]: domain %s has no handler %q (its handlers: %s)", k, d.name, k, strings.Join(names, ", ")))
				continue
			}
			if g := cfg.Handlers[k].ConsumerGroup; g != "" {
				if err := validGroup(g); err != nil {
					errs = append(errs, fmt.Errorf("[handlers.%s] consumer_group: %w", k, err))
					continue
				}
				out[k] = g
			}
		}
	}
	owner := map[string]string{} // group -> handler
	for _, h := range d.handlers {
		g := out[h.name]
		if o, dup := owner[g]; dup {
			errs = append(errs, fmt.Errorf("handlers %s and %s are both in consumer group %q: on a stream both read each would miss the entries the other takes; give one of them another group", o, h.name, g))
			continue
		}
		owner[g] = h.name
		if g == CommandGroup {
			errs = append(errs, fmt.Errorf("handler %s: consumer group %q is reserved for command handling", h.name, CommandGroup))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// validGroup rejects what redis-cli users could not type back, and what no
// reasonable group name holds.
func validGroup(g string) error {
	switch {
	case g == "":
		return errors.New("consumer group must not be empty")
	case strings.IndexFunc(g, unicode.IsSpace) >= 0 || strings.IndexFunc(g, unicode.IsControl) >= 0:
		return fmt.Errorf("consumer group %q must not contain whitespace or control characters", g)
	case len(g) > 255:
		return fmt.Errorf("consumer group %q is longer than 255 bytes", g[:32]+"...")
	}
	return nil
}
