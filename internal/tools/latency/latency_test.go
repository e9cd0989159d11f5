package latency

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSummarizeNearestRank(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	s := Summarize(d)
	require.Equal(t, Summary{Count: 100, P50: 50, P90: 90, P99: 99, Max: 100}, s)
	require.Equal(t, 100*time.Millisecond, d[0], "Summarize must not reorder its input")
}

func TestSummarizeSmallAndEmpty(t *testing.T) {
	require.Equal(t, Summary{}, Summarize(nil))
	s := Summarize([]time.Duration{1500 * time.Microsecond})
	require.Equal(t, Summary{Count: 1, P50: 1.5, P90: 1.5, P99: 1.5, Max: 1.5}, s)
	s = Summarize([]time.Duration{time.Millisecond, 3 * time.Millisecond})
	require.Equal(t, 1.0, s.P50)
	require.Equal(t, 3.0, s.P90)
	require.Equal(t, 3.0, s.P99)
}

func TestPercentileBounds(t *testing.T) {
	s := []time.Duration{1, 2, 3}
	require.Equal(t, time.Duration(1), Percentile(s, 0))
	require.Equal(t, time.Duration(3), Percentile(s, 1))
	require.Equal(t, time.Duration(0), Percentile(nil, 0.5))
}

func TestRatio(t *testing.T) {
	require.Equal(t, 0.5, Ratio(1, 2))
	require.Equal(t, 0.333, Ratio(1, 3))
	require.Equal(t, 0.0, Ratio(1, 0))
	require.Equal(t, 0.0, Ratio(1, -1))
}

func TestSummaryJSONNames(t *testing.T) {
	b, err := json.Marshal(Summary{Count: 1, P50: 2, P90: 3, P99: 4, Max: 5})
	require.NoError(t, err)
	require.JSONEq(t, `{"count":1,"p50_ms":2,"p90_ms":3,"p99_ms":4,"max_ms":5}`, string(b))
}

func TestRecorder(t *testing.T) {
	var r Recorder
	done := make(chan struct{})
	for g := 0; g < 4; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 25; i++ {
				r.Add(time.Millisecond)
			}
		}()
	}
	for g := 0; g < 4; g++ {
		<-done
	}
	require.Equal(t, 100, r.Len())
	require.Equal(t, 100, r.Summary().Count)
}
