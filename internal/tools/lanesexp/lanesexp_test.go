package lanesexp

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOffOnRunsOffFirst(t *testing.T) {
	var order []bool
	off, on, err := OffOn(context.Background(), func(_ context.Context, lanes bool) (string, error) {
		order = append(order, lanes)
		return Label(lanes), nil
	})
	require.NoError(t, err)
	assert.Equal(t, []bool{false, true}, order)
	assert.Equal(t, "off", off)
	assert.Equal(t, "on", on)

	order = nil
	_, _, err = OffOn(context.Background(), func(_ context.Context, lanes bool) (int, error) {
		order = append(order, lanes)
		return 0, errors.New("boom")
	})
	assert.EqualError(t, err, "boom")
	assert.Equal(t, []bool{false}, order, "a failed off run stops the experiment")
}

// The producer counts only successful sends, reports failures, numbers the
// calls from 0 and stops when Stop closes.
func TestProducerStops(t *testing.T) {
	stop := make(chan struct{})
	var mu sync.Mutex
	var calls []int
	var failed int
	p := Producer{Rate: 1000, Stop: stop,
		Send: func(_ context.Context, n int) error {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, n)
			if n%2 == 1 {
				return errors.New("odd")
			}
			return nil
		},
		Failed: func(error) { failed++ },
	}
	done := make(chan int)
	go func() { done <- p.Run(context.Background()) }()
	ok, err := WaitFor(context.Background(), time.Now().Add(time.Minute), func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(calls) >= 10
	})
	require.NoError(t, err)
	require.True(t, ok)
	close(stop)
	sent := <-done
	mu.Lock()
	defer mu.Unlock()
	for i, n := range calls {
		require.Equal(t, i, n)
	}
	assert.Equal(t, len(calls)-failed, sent)
	assert.Equal(t, len(calls)/2, failed)
}

func TestProducerEnds(t *testing.T) {
	sent := Producer{Rate: 100, End: time.Now(), Send: func(context.Context, int) error { return nil }}.Run(context.Background())
	assert.Zero(t, sent, "an End in the past sends nothing")
}

func TestWaitFor(t *testing.T) {
	ok, err := WaitFor(context.Background(), time.Now(), func() bool { return false })
	assert.NoError(t, err)
	assert.False(t, ok)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = WaitFor(ctx, time.Now().Add(time.Minute), func() bool { return false })
	assert.ErrorIs(t, err, context.Canceled)
}
