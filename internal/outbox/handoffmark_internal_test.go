package outbox

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/lanewaystore"
	"github.com/laneway/laneway/lanewaystore/sqlitestore"
)

// gatedMarks holds every MarkPublished until release is closed.
type gatedMarks struct {
	lanewaystore.Store
	release chan struct{}
	calls   chan int // the rows of each mark, as it begins
}

func (g *gatedMarks) MarkPublished(ctx context.Context, p lanewaystore.MarkPublishedParams) error {
	g.calls <- len(p.Rows)
	<-g.release
	return g.Store.MarkPublished(ctx, p)
}

// The marker runs one mark at a time, marks the rows queued meanwhile
// together, and says when the rows published and not yet marked reach
// their bound, for the worker to wait.
func TestMarkerOneAtATimeAndBounded(t *testing.T) {
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "laneway.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	require.NoError(t, s.Migrate(ctx))
	g := &gatedMarks{Store: s, release: make(chan struct{}), calls: make(chan int, 8)}
	m := &marker{r: New(g, nil, Config{})}

	add := func(n int) {
		rows := make([]lanewaystore.OutboxRow, n)
		marks := make([]lanewaystore.PublishedRow, n)
		for i := range rows {
			rows[i].StreamName = "customer-1"
			marks[i] = lanewaystore.PublishedRow{ID: int64(i + 1), Stream: "customer"}
		}
		m.add(ctx, rows, marks)
	}
	add(1)
	require.Equal(t, 1, <-g.calls, "the first rows are marked at once")
	add(maxUnmarkedRows - 2)
	assert.False(t, m.full(), "below the bound")
	add(1)
	assert.True(t, m.full(), "the rows held and queued reach the bound")
	n, err := m.collect()
	assert.Zero(t, n, "nothing marked yet")
	require.NoError(t, err)

	close(g.release)
	n, err = m.wait()
	require.NoError(t, err)
	assert.Equal(t, maxUnmarkedRows, n)
	assert.False(t, m.full())
	assert.Equal(t, maxUnmarkedRows-1, <-g.calls, "the rows queued during the first mark went in one")
	assert.Empty(t, g.calls, "two marks in all")
}

// A claim pass that began before the hand-off was turned off (a failed
// publish, rows handed back) does not turn it on again: the rows of this
// process that now wait for the claim path may not have been there for
// it. A pass that begins after does.
func TestHandoffResumesOnlyAfterAPassBegunSinceItTurnedOff(t *testing.T) {
	ho := &handoff{on: true, ready: make(chan struct{}, 1)}
	before := ho.seqNow()
	ho.turnOff()
	ho.resume(before, false)
	assert.False(t, ho.isOn(), "a pass begun before the turn-off came back short")
	after := ho.seqNow()
	ho.resume(after, false)
	assert.True(t, ho.isOn(), "a pass begun after it came back short")
}
