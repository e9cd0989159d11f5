package laneway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
	"github.com/laneway/laneway/lanewayconfig"
	"github.com/laneway/laneway/lanewaystore/sqlitestore"
)

// Engine benchmarks (issue 4): the consume rate end to end through the
// engine (decode, upcast check, Dispatch to a no-op projector, batched
// acks) against real Redis, each beside a ceiling measured in the same run,
// so the ratios hold on a noisy shared machine. Run them with -benchtime 1x:
// one iteration drains a whole pre-filled stream.
//
//	scripts/test-services go test -run '^$' -bench 'Engine' -benchtime 1x .

// benchEntries is the pre-filled backlog of the consume benchmarks.
const benchEntries = 200_000

// benchKit is one engine benchmark's broker, raw client and stream names.
type benchKit struct {
	br  *redisbroker.Broker
	raw *redis.Client
	cat string
}

func newBenchKit(b *testing.B) *benchKit {
	url := testsvc.RedisURL(b)
	br, err := redisbroker.Open(context.Background(), url, redisbroker.Options{})
	require.NoError(b, err)
	opt, err := redis.ParseURL(url)
	require.NoError(b, err)
	k := &benchKit{br: br, raw: redis.NewClient(opt), cat: testsvc.Prefix() + "account"}
	b.Cleanup(func() {
		ctx := context.Background()
		for _, s := range []string{k.cat, k.cat + ":backfill", k.cat + ":raw", k.cat + ":command", k.cat + ":command:backfill"} {
			_ = k.br.DeleteKey(ctx, s)
		}
		_ = k.raw.Close()
		_ = br.Close()
	})
	return k
}

// benchDomain has one no-op projector on the kit's category.
// started, when set, is called as the projector starts.
func benchDomain(b *testing.B, cat string, started func()) *laneway.Domain {
	d := laneway.NewDomain("Bank")
	laneway.RegisterAggregate[Account](d, laneway.AggregateOptions{Category: cat})
	laneway.RegisterEvent[Account, Opened](d)
	laneway.RegisterCommand[Account, OpenAccount](d, func(ctx context.Context, tx *laneway.Tx, c OpenAccount) error {
		return nil
	})
	laneway.RegisterEvent[Account, Filed](d)
	h := laneway.NewHandler("AccountProjector")
	laneway.On(h, func(ctx context.Context, tx *laneway.Tx, e Opened, m laneway.Meta) error {
		if started != nil {
			started()
		}
		return nil
	})
	laneway.On(h, func(ctx context.Context, tx *laneway.Tx, e Filed, m laneway.Meta) error {
		if started != nil {
			started()
		}
		return nil
	})
	d.AddHandler(h)
	dom, err := d.Build()
	require.NoError(b, err)
	return dom
}

// Filed is the event of workload A (issue 14): a 256-byte payload as a
// JSON byte field (base64), about 840 bytes per entry with the envelope.
type Filed struct {
	Payload []byte `json:"payload"`
}

func (Filed) Kind() string { return "Filed" }

// payloadEnvelopes returns n Filed entries as EncodeEvent (and so the
// relay) writes them, on 100 aggregates, each with its own 256-byte payload.
func payloadEnvelopes(b *testing.B, cat string, n int) []string {
	out := make([]string, n)
	pad := make([]byte, 256)
	for i := range out {
		for j := range pad {
			pad[j] = byte(i*31 + j)
		}
		pub, err := laneway.EncodeEvent(laneway.EventEntry{
			Domain: "Bank", Category: cat, AggregateID: strconv.Itoa(i % 100), Kind: "Filed",
			Sequence: strconv.Itoa(i) + ".1", CorrelationID: "c", Payload: Filed{Payload: pad},
		}, nil)
		require.NoError(b, err)
		out[i] = pub.Data
	}
	return out
}

// benchEnvelopes returns n Opened envelopes as the relay writes them, on
// 100 aggregates (per-aggregate ordering has work to do at concurrency > 1).
func benchEnvelopes(b *testing.B, cat string, n int, priority int) []string {
	out := make([]string, n)
	for i := range out {
		id := strconv.Itoa(i % 100)
		data, err := envelope.Encode(envelope.Envelope{
			Data: json.RawMessage(fmt.Sprintf(`{"owner":"owner-%d@example.com"}`, i)),
			Metadata: envelope.Metadata{
				Headers: envelope.Headers{
					ID: fmt.Sprintf("%s-%s-%d.1", cat, id, i), Time: time.Now().UTC().Format(time.RFC3339Nano),
					Type: "Bank.Opened.v1", Stream: cat + "-" + id,
				},
				Domain: envelope.Domain{
					Class: envelope.ClassEvent, StreamCategory: cat, Priority: priority, Version: 1,
					SequenceID: fmt.Sprintf("%d.1", i), CorrelationID: "c" + id, CausationID: "c" + id,
				},
			},
		})
		require.NoError(b, err)
		out[i] = string(data)
	}
	return out
}

func (k *benchKit) fill(b *testing.B, stream string, datas []string) {
	ctx := context.Background()
	pubs := make([]lanewaybroker.Publication, 0, 1000)
	for len(datas) > 0 {
		n := min(len(datas), 1000)
		pubs = pubs[:0]
		for _, d := range datas[:n] {
			pubs = append(pubs, lanewaybroker.Publication{Stream: stream, Data: d})
		}
		_, err := k.br.Publish(ctx, pubs)
		require.NoError(b, err)
		datas = datas[n:]
	}
}

// rawCeiling drains stream with plain go-redis: XREADGROUP COUNT 100, then
// one XACK of the batch, and returns entries per second.
func (k *benchKit) rawCeiling(b *testing.B, datas []string) float64 {
	rate, _ := k.rawCeilingCPU(b, datas)
	return rate
}

// rawCeilingCPU is rawCeiling, also returning the process's CPU time
// during the drain.
func (k *benchKit) rawCeilingCPU(b *testing.B, datas []string) (float64, time.Duration) {
	ctx := context.Background()
	stream := k.cat + ":raw"
	_ = k.br.DeleteKey(ctx, stream)
	require.NoError(b, k.br.EnsureGroup(ctx, stream, "Raw"))
	k.fill(b, stream, datas)
	start, cpu0 := time.Now(), processCPU()
	got := 0
	for got < len(datas) {
		res, err := k.raw.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: "Raw", Consumer: "raw", Streams: []string{stream, ">"}, Count: 100, Block: -1,
		}).Result()
		require.NoError(b, err)
		ids := make([]string, len(res[0].Messages))
		for i, m := range res[0].Messages {
			ids[i] = m.ID
		}
		require.NoError(b, k.raw.XAck(ctx, stream, "Raw", ids...).Err())
		got += len(ids)
	}
	rate, cpu := float64(got)/time.Since(start).Seconds(), processCPU()-cpu0
	_ = k.br.DeleteKey(ctx, stream)
	return rate, cpu
}

// startEngine runs an engine of benchDomain on a fresh SQLite database;
// onHandled sees every handled message.
func (k *benchKit) startEngine(b *testing.B, lanes bool, concurrency int, onHandled func(laneway.Handled)) *laneway.Engine {
	return k.startEngineHook(b, lanes, concurrency, onHandled, nil)
}

func (k *benchKit) startEngineHook(b *testing.B, lanes bool, concurrency int, onHandled func(laneway.Handled), started func()) *laneway.Engine {
	ctx := context.Background()
	cfg := lanewayconfig.Default()
	cfg.Server.PriorityLanes.Enabled = lanes
	cfg.Server.StreamSubscription.Concurrency = concurrency
	st, err := sqlitestore.Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	require.NoError(b, err)
	app, err := laneway.Open(ctx, benchDomain(b, k.cat, started), cfg, laneway.Options{Store: st})
	require.NoError(b, err)
	opts := laneway.EngineOptions{
		Broker: k.br, DisableHTTP: true, Logger: slog.New(slog.DiscardHandler),
	}
	if onHandled != nil {
		opts.OnHandled = func(h laneway.Handled) {
			if h.Err != nil {
				b.Errorf("handler failed: %v", h.Err)
			}
			if h.Group == "AccountProjector" {
				onHandled(h)
			}
		}
	}
	eng := laneway.NewEngine(app, opts)
	require.NoError(b, eng.Start(ctx))
	b.Cleanup(func() {
		_ = eng.Stop(context.Background())
		_ = st.Close()
	})
	return eng
}

// drain starts an engine, waits until n messages were handled and returns
// the time from the end of Start (opening the database and creating the
// groups are not consuming).
func (k *benchKit) drain(b *testing.B, lanes bool, concurrency, n int) time.Duration {
	var handled atomic.Int64
	done := make(chan struct{})
	eng := k.startEngine(b, lanes, concurrency, func(laneway.Handled) {
		if handled.Add(1) == int64(n) {
			close(done)
		}
	})
	start := time.Now()
	<-done
	d := time.Since(start)
	require.NoError(b, eng.Stop(context.Background()))
	return d
}

// drainQuiet is drain without the OnHandled hook, counting in the
// projector instead: `laneway server` sets no hook, and the hook's own
// per-message work (Handled, a time parse) is not the engine's.
func (k *benchKit) drainQuiet(b *testing.B, lanes bool, concurrency, n int) (time.Duration, time.Duration) {
	var handled atomic.Int64
	done := make(chan struct{})
	eng := k.startEngineHook(b, lanes, concurrency, nil, func() {
		if handled.Add(1) == int64(n) {
			close(done)
		}
	})
	stopProfile := profileEngine(b)
	start, cpu0 := time.Now(), processCPU()
	<-done
	d, cpu := time.Since(start), processCPU()-cpu0
	stopProfile()
	require.NoError(b, eng.Stop(context.Background()))
	return d, cpu
}

// profileEngine writes a CPU profile of the engine's drain alone (not of
// filling the streams or of the raw consumer) to the file named by
// LANEWAY_BENCH_CPUPROFILE, when set; run without -cpuprofile then.
func profileEngine(b *testing.B) (stop func()) {
	path := os.Getenv("LANEWAY_BENCH_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	require.NoError(b, err)
	require.NoError(b, pprof.StartCPUProfile(f))
	return func() {
		pprof.StopCPUProfile()
		require.NoError(b, f.Close())
	}
}

// BenchmarkEngineConsumeA is workload A of issue 14: 200,000 pre-loaded
// entries of a 256-byte payload (about 840 bytes in the envelope), the
// engine as `laneway server` runs it (configuration defaults, lanes on,
// concurrency 1, no OnHandled hook), beside the raw go-redis consumer
// (XREADGROUP COUNT 100, an inline no-op, one XACK per batch) on the same
// entries, measured right before and right after the engine. The target is
// pct_of_raw >= 50. cpu_us/msg and raw_cpu_us/msg are this process's CPU
// time per message in each (Redis's own is not counted): they move much
// less with the machine's load than the rates.
//
//	REDIS_URL=... go test -run '^$' -bench EngineConsumeA -benchtime 1x -count 3 .
func BenchmarkEngineConsumeA(b *testing.B) {
	k := newBenchKit(b)
	datas := payloadEnvelopes(b, k.cat, benchEntries)
	b.ResetTimer() // -benchmem counts the engine's drains alone
	var engTime, engCPU, rawCPU time.Duration
	var rawRate float64
	for range b.N {
		b.StopTimer()
		r, c := k.rawCeilingCPU(b, datas[:benchEntries/2])
		rawRate, rawCPU = rawRate+r, rawCPU+c
		_ = k.br.DeleteKey(context.Background(), k.cat)
		_ = k.br.DeleteKey(context.Background(), k.cat+":backfill")
		k.fill(b, k.cat, datas)
		b.StartTimer()
		d, c := k.drainQuiet(b, true, 1, benchEntries)
		engTime, engCPU = engTime+d, engCPU+c
		b.StopTimer()
		r, c = k.rawCeilingCPU(b, datas[benchEntries/2:])
		rawRate, rawCPU = rawRate+r, rawCPU+c
		b.StartTimer()
	}
	n := float64(benchEntries * b.N)
	rate := n / engTime.Seconds()
	rawRate /= float64(2 * b.N)
	b.ReportMetric(rate, "msgs/s")
	b.ReportMetric(rawRate, "raw/s")
	b.ReportMetric(100*rate/rawRate, "pct_of_raw")
	b.ReportMetric(float64(engCPU.Microseconds())/n, "cpu_us/msg")
	b.ReportMetric(float64(rawCPU.Microseconds())/n, "raw_cpu_us/msg")
}

// BenchmarkEngineConsume is the consume rate of one subscription with a
// no-op projector, lanes off, from a pre-filled stream of 200,000 entries,
// at concurrency 1 and 8, beside the raw go-redis ceiling (XREADGROUP
// COUNT 100 + one XACK per batch) measured in the same run.
func BenchmarkEngineConsume(b *testing.B) {
	for _, conc := range []int{1, 8} {
		b.Run("concurrency="+strconv.Itoa(conc), func(b *testing.B) {
			k := newBenchKit(b)
			datas := benchEnvelopes(b, k.cat, benchEntries, 0)
			var engTime time.Duration
			var rawRate float64
			for range b.N {
				// The ceiling is measured right before and right after the
				// engine (half the entries each), so both see the same load
				// on the shared machine.
				b.StopTimer()
				rawRate += k.rawCeiling(b, datas[:benchEntries/2])
				_ = k.br.DeleteKey(context.Background(), k.cat)
				k.fill(b, k.cat, datas)
				b.StartTimer()
				engTime += k.drain(b, false, conc, benchEntries)
				b.StopTimer()
				rawRate += k.rawCeiling(b, datas[benchEntries/2:])
				b.StartTimer()
			}
			rate := float64(benchEntries*b.N) / engTime.Seconds()
			rawRate /= float64(2 * b.N)
			b.ReportMetric(rate, "msgs/s")
			b.ReportMetric(rawRate, "raw/s")
			b.ReportMetric(100*rate/rawRate, "pct_of_raw")
		})
	}
}

// BenchmarkEngineBackfillDrain compares draining 100,000 entries through
// the backfill lane (lanes on) with draining them through the primary lane
// with lanes off, in the same run: pct_of_lanes_off is the lanes-on rate as
// a share of the lanes-off rate. With traffic, a producer appends 500
// primary events per second during both drains and time_ratio is the
// lanes-on drain time over the lanes-off one.
func BenchmarkEngineBackfillDrain(b *testing.B) {
	const n = 100_000
	for _, traffic := range []bool{false, true} {
		b.Run("traffic="+strconv.FormatBool(traffic), func(b *testing.B) {
			k := newBenchKit(b)
			primary := benchEnvelopes(b, k.cat, 20_000, 0)
			backfill := benchEnvelopes(b, k.cat, n, -50)
			var on, off time.Duration
			for range b.N {
				for _, lanes := range []bool{false, true} {
					b.StopTimer()
					ctx := context.Background()
					_ = k.br.DeleteKey(ctx, k.cat)
					_ = k.br.DeleteKey(ctx, k.cat+":backfill")
					stream := k.cat
					if lanes {
						stream = k.cat + ":backfill"
					}
					k.fill(b, stream, backfill)
					stopTraffic := func() {}
					if traffic {
						stopTraffic = k.produce(b, primary, 500)
					}
					b.StartTimer()
					d := k.drainLane(b, lanes, n)
					b.StopTimer()
					stopTraffic()
					if lanes {
						on += d
					} else {
						off += d
					}
				}
			}
			b.ReportMetric(float64(n*b.N)/on.Seconds(), "lanes_on_msgs/s")
			b.ReportMetric(float64(n*b.N)/off.Seconds(), "lanes_off_msgs/s")
			b.ReportMetric(100*off.Seconds()/on.Seconds(), "pct_of_lanes_off")
			b.ReportMetric(on.Seconds()/off.Seconds(), "time_ratio")
		})
	}
}

// drainLane runs an engine until n messages of the backlog (priority -50)
// were handled, counting primary traffic apart.
func (k *benchKit) drainLane(b *testing.B, lanes bool, n int) time.Duration {
	var handled atomic.Int64
	done := make(chan struct{})
	eng := k.startEngine(b, lanes, 1, func(m laneway.Handled) {
		if m.Meta.Priority < 0 && handled.Add(1) == int64(n) {
			close(done)
		}
	})
	start := time.Now()
	<-done
	d := time.Since(start)
	require.NoError(b, eng.Stop(context.Background()))
	return d
}

// produce appends datas to the primary stream at perSecond, in small
// bursts, until the returned stop is called.
func (k *benchKit) produce(b *testing.B, datas []string, perSecond int) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		per := max(perSecond/100, 1)
		for i := 0; ; i += per {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			pubs := make([]lanewaybroker.Publication, per)
			for j := range pubs {
				pubs[j] = lanewaybroker.Publication{Stream: k.cat, Data: datas[(i+j)%len(datas)]}
			}
			if _, err := k.br.Publish(ctx, pubs); err != nil && ctx.Err() == nil {
				b.Errorf("produce: %v", err)
				return
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// BenchmarkEngineIdleLatency is the time from XADD of one primary event to
// the start of its handler on an idle engine, lanes on and off in the same
// run (300 samples each, one at a time): p50 and p99 of each, and the
// lanes-on p99 over the lanes-off p99.
func BenchmarkEngineIdleLatency(b *testing.B) {
	const samples = 300
	k := newBenchKit(b)
	datas := benchEnvelopes(b, k.cat, samples, 0)
	lat := map[bool][]time.Duration{}
	for range b.N {
		for _, lanes := range []bool{false, true} {
			ctx := context.Background()
			_ = k.br.DeleteKey(ctx, k.cat)
			_ = k.br.DeleteKey(ctx, k.cat+":backfill")
			got := make(chan time.Time, 1)
			eng := k.startEngineHook(b, lanes, 1, func(laneway.Handled) {}, func() { got <- time.Now() })
			time.Sleep(50 * time.Millisecond) // the blocking read is outstanding
			for i := range samples {
				sent := time.Now()
				_, err := k.br.Publish(ctx, []lanewaybroker.Publication{{Stream: k.cat, Data: datas[i]}})
				require.NoError(b, err)
				lat[lanes] = append(lat[lanes], (<-got).Sub(sent))
				time.Sleep(2 * time.Millisecond) // idle again: the read blocks
			}
			require.NoError(b, eng.Stop(ctx))
		}
	}
	p := func(lanes bool, q float64) time.Duration {
		s := slices.Clone(lat[lanes])
		slices.Sort(s)
		return s[min(int(q*float64(len(s))), len(s)-1)]
	}
	b.ReportMetric(float64(p(false, 0.5).Microseconds()), "off_p50_us")
	b.ReportMetric(float64(p(false, 0.99).Microseconds()), "off_p99_us")
	b.ReportMetric(float64(p(true, 0.5).Microseconds()), "on_p50_us")
	b.ReportMetric(float64(p(true, 0.99).Microseconds()), "on_p99_us")
	b.ReportMetric(float64(p(true, 0.99))/float64(p(false, 0.99)), "p99_ratio")
}
