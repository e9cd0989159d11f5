package envelope_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/envelope"
)

func TestReplayGroupFromExtensions(t *testing.T) {
	const base = `{"data":{"a":1},"metadata":{"headers":{"id":"m1","type":"D.E.v1"},"domain":{"kind":"EVENT"}%s}}`
	for name, c := range map[string]struct{ ext, want string }{
		"none":            {"", ""},
		"ours":            {`,"extensions":{"laneway_replay_group":"CustomerProjector","x":1}`, "CustomerProjector"},
		"others only":     {`,"extensions":{"x":"y"}`, ""},
		"null":            {`,"extensions":null`, ""},
		"not an object":   {`,"extensions":"odd"`, ""},
		"member not text": {`,"extensions":{"laneway_replay_group":7}`, ""},
	} {
		t.Run(name, func(t *testing.T) {
			e, err := envelope.Decode([]byte(fmt.Sprintf(base, c.ext)))
			require.NoError(t, err, "extensions never make a message undecodable")
			assert.Equal(t, c.want, e.Metadata.ReplayGroup)
			out, err := envelope.Encode(e)
			require.NoError(t, err)
			assert.NotContains(t, string(out), "laneway_replay_group", "Encode does not write it")
		})
	}
}
