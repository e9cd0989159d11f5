package lanewayconfig_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/laneway/laneway/lanewayconfig"
)

// FuzzParse: no input panics; an accepted document gives a configuration
// that validates and survives TOML() and Parse unchanged; a rejected one
// says why.
func FuzzParse(f *testing.F) {
	for _, doc := range []string{
		"",
		designExample,
		seedOverlay,
		"[server.priority_lanes]\nenabled = \"${LANES:-false}\"\nthreshold = \"${T:--50}\"\n",
		"[server.priority_lane]\nenabled = true\n",
		"[server.priority_lanes]\nbackfill_suffix = \"a:b\"\nthreshold = 0.5\n",
		"[databases.default]\nprovider = \"postgres\"\nurl = \"postgres://u:secret@h/db\"\n",
		"[brokers.default]\nprovider = \"redis\"\nurl = \"redis://:secret@host:6379/0\"\n",
		"[production]\n[staging.server]\nmessages_per_tick = 0\n",
		"name = \"${NAME:-Customers}\"\n[outbox]\nbatch_size = \"${B}\"\n",
		"[server\n",
		"a = [1, {b = 2}]\n[[production]]\nx = 1\n",
		"server = 5\ndatabases = []\n",
		"[outbox]\nlease_seconds = nan\ntick_interval_ms = 9223372036854775807\n",
		"[\"quoted.key\"]\n\"with space\" = 1\n",
	} {
		f.Add(doc, "production")
		f.Add(doc, "")
	}
	f.Fuzz(func(t *testing.T, doc, env string) {
		opts := lanewayconfig.LoadOptions{Env: env, LookupEnv: envMap("B", "7", "LANES", "true", "NAME", "Fuzz")}
		c, err := lanewayconfig.Parse([]byte(doc), opts)
		if err != nil {
			if c != nil {
				t.Fatalf("a config with an error: %v", err)
			}
			var ve *lanewayconfig.ValidationError
			if errors.As(err, &ve) {
				if len(ve.Problems) == 0 {
					t.Fatalf("ValidationError without problems")
				}
				for _, p := range ve.Problems {
					if p.Path == "" || p.Msg == "" {
						t.Fatalf("incomplete problem %#v", p)
					}
				}
			} else if err.Error() == "" {
				t.Fatalf("empty error")
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that does not validate: %v", err)
		}
		if err := c.Redacted().Validate(); err != nil {
			t.Fatalf("redacted config does not validate: %v", err)
		}
		_ = c.LanesFingerprint()
		out, err := c.TOML()
		if err != nil {
			t.Fatalf("TOML: %v", err)
		}
		if bytes.Contains(out, []byte("$")) {
			return // resolved values may hold text that would be read as a reference again
		}
		again, err := lanewayconfig.Parse(out, lanewayconfig.LoadOptions{LookupEnv: envMap()})
		if err != nil {
			t.Fatalf("TOML() output does not parse: %v\n%s", err, out)
		}
		a, _ := c.JSON()
		b, _ := again.JSON()
		if !bytes.Equal(a, b) {
			t.Fatalf("round trip changed the config:\n%s\n%s", a, b)
		}
	})
}
