package startstop

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStartStop(t *testing.T) {
	var r Runner
	ctx, err := r.Start(context.Background())
	require.NoError(t, err)
	_, err = r.Start(context.Background())
	assert.ErrorIs(t, err, ErrStarted)
	assert.True(t, r.Running())

	var order []string
	exited := make(chan struct{})
	r.Go(func() {
		<-ctx.Done()
		close(exited)
	})
	r.OnStop(func() { order = append(order, "onstop") })
	require.NoError(t, r.Stop(context.Background()))
	<-exited
	assert.Equal(t, []string{"onstop"}, order)
	assert.False(t, r.Running())
	require.NoError(t, r.Stop(context.Background()), "stopping twice is fine")

	_, err = r.Start(context.Background())
	require.NoError(t, err, "a stopped part starts again")
	require.NoError(t, r.Stop(context.Background()))
}

// The run context ends with the starting context too.
func TestRunContextFollowsStart(t *testing.T) {
	var r Runner
	start, cancel := context.WithCancel(context.Background())
	ctx, err := r.Start(start)
	require.NoError(t, err)
	cancel()
	<-ctx.Done()
	require.NoError(t, r.Stop(context.Background()))
}

// Stop is bounded by its context; Wait then waits for the stragglers.
func TestStopBounded(t *testing.T) {
	var r Runner
	_, err := r.Start(context.Background())
	require.NoError(t, err)
	release := make(chan struct{})
	r.Go(func() { <-release })
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	err = r.Stop(ctx)
	assert.True(t, errors.Is(err, context.DeadlineExceeded), err)
	close(release)
	r.Wait()
}

func TestGoEvery(t *testing.T) {
	var r Runner
	ctx, err := r.Start(context.Background())
	require.NoError(t, err)
	calls := make(chan struct{}, 100)
	r.GoEvery(ctx, time.Millisecond, func(context.Context) { calls <- struct{}{} })
	for range 3 {
		<-calls
	}
	require.NoError(t, r.Stop(context.Background()))
}

// Background's stop cancels fn's context and returns only once fn has;
// a second stop does nothing. The caller's context ends fn too.
func TestBackground(t *testing.T) {
	returned := false
	stop := Background(context.Background(), func(ctx context.Context) {
		<-ctx.Done()
		returned = true // read after stop without a lock: stop waits for fn (-race checks it)
	})
	stop()
	assert.True(t, returned)
	stop()

	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan struct{})
	stop = Background(ctx, func(ctx context.Context) {
		<-ctx.Done()
		close(ended)
	})
	cancel()
	<-ended
	stop()
}
