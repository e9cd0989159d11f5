package laneway_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/laneway/laneway"
)

// BenchmarkProcess measures Process of a one-event command (create an
// aggregate, one outbox row) per store, sequential and with 4 callers.
// Compare with BenchmarkRawInsert in each store package.
func BenchmarkProcess(b *testing.B) {
	for _, sc := range stores() {
		for _, par := range []int{1, 4} {
			b.Run(sc.name+"/callers="+strconv.Itoa(par), func(b *testing.B) {
				app, err := laneway.Open(context.Background(), testDomain(b), nil, laneway.Options{Store: sc.open(b)})
				if err != nil {
					b.Fatal(err)
				}
				var n atomic.Int64
				ctx := context.Background()
				b.ResetTimer()
				if par == 1 {
					for i := 0; i < b.N; i++ {
						if err := app.Process(ctx, OpenAccount{ID: strconv.FormatInt(n.Add(1), 10)}); err != nil {
							b.Fatal(err)
						}
					}
				} else {
					b.SetParallelism((par + 1) / 2) // GOMAXPROCS=2 on the reference machine
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if err := app.Process(ctx, OpenAccount{ID: strconv.FormatInt(n.Add(1), 10)}); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cmds/s")
			})
		}
	}
}
