package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/testsvc"
)

// TestScaleOnCluster: the scale scenario on a real three-master cluster
// with a partitioned category: every configuration handles every event,
// reports its partitions, and the master shares cover all the entries on
// more than one master.
func TestScaleOnCluster(t *testing.T) {
	cl := testsvc.Cluster(t)
	var out, errb bytes.Buffer
	code := Main(context.Background(), []string{"--json", "--scenario", "scale", "--broker", cl.URL(),
		"--partitions", "9", "--events", "300"}, &out, &errb)
	require.Equal(t, 0, code, "stderr: %s", errb.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 3, out.String())
	for _, raw := range lines {
		var l struct {
			Processes   int                `json:"processes"`
			Count       int                `json:"count"`
			Handled     int                `json:"handled"`
			Partitions  int                `json:"partitions"`
			MasterShare map[string]float64 `json:"master_share"`
			Broker      string             `json:"broker"`
		}
		require.NoError(t, json.Unmarshal([]byte(raw), &l), raw)
		assert.Equal(t, 300, l.Count, raw)
		assert.Equal(t, 300, l.Handled, raw)
		assert.Equal(t, 9, l.Partitions, raw)
		assert.Equal(t, "redis-cluster", l.Broker, raw)
		sum := 0.0
		for m, s := range l.MasterShare {
			assert.Contains(t, cl.Addrs, m, raw)
			sum += s
		}
		assert.Greater(t, len(l.MasterShare), 1, "the entries sit on more than one master: %s", raw)
		assert.InDelta(t, 1, sum, 0.01, raw)
		assert.False(t, math.IsNaN(sum))
	}
	p := ShortParams()
	p.Broker = cl.URL()
	p.Scenarios = []string{"scale", "idle"}
	require.ErrorContains(t, p.Validate(), "only the scale scenario")
	p.Scenarios = []string{"scale"}
	require.NoError(t, p.Validate())
}
