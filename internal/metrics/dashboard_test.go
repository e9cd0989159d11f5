package metrics

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/consumer"
	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewaybroker/redisbroker"
	"github.com/laneway/laneway/lanewaystore"
)

// dashboardPath is the Grafana dashboard shipped for these metrics.
const dashboardPath = "../../deploy/grafana/laneway.json"

// family is what the dashboard may rely on about one exported metric.
type family struct {
	typ    dto.MetricType
	labels map[string]bool
}

// exported gathers every metric New registers, with a sample in each (a
// stream with a consumer group on the embedded broker, an outbox, and one
// call of every observer hook), so the name, type and labels come from the
// code itself.
func exported(t *testing.T) map[string]family {
	t.Helper()
	ctx := context.Background()
	b, err := redisbroker.OpenEmbedded(ctx, redisbroker.EmbeddedOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	_, err = b.Publish(ctx, []lanewaybroker.Publication{{Stream: "customer", Data: "{}"}})
	require.NoError(t, err)
	require.NoError(t, b.EnsureGroup(ctx, "customer", "Projector"))
	reg := prometheus.NewRegistry()
	old := time.Now().Add(-time.Minute)
	m, err := New(reg, Params{
		Broker: b, Lanes: lanes.Config{Enabled: true, Naming: lanes.Naming{BackfillSuffix: "backfill"}},
		Streams: []Stream{{Name: "customer", Category: "customer", Lane: "primary"}},
		OutboxStats: func(context.Context) (lanewaystore.OutboxStats, error) {
			return lanewaystore.OutboxStats{OldestPending: &old}, nil
		},
	})
	require.NoError(t, err)
	o := m.Consumer("Projector", "customer", "customer:backfill")
	o.Handled(consumer.Primary, consumer.OutcomeOK, time.Millisecond, nil)
	o.Retried(consumer.Primary)
	o.DeadLettered(consumer.Primary, "customer:dlq")
	o.Read(consumer.ReadProbe, 1)
	m.Published("customer", 1, time.Millisecond)
	m.Failed(1)
	m.Abandoned(1)

	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]family{}
	for _, mf := range mfs {
		f := family{typ: mf.GetType(), labels: map[string]bool{}}
		for _, metric := range mf.GetMetric() {
			for _, l := range metric.GetLabel() {
				f.labels[l.GetName()] = true
			}
		}
		out[mf.GetName()] = f
	}
	return out
}

// exprs returns every PromQL expression of the dashboard (panel targets,
// nested rows included, and template variable queries) by panel title.
func exprs(t *testing.T, raw []byte) map[string][]string {
	t.Helper()
	var doc any
	require.NoError(t, json.Unmarshal(raw, &doc), "%s is not valid JSON", dashboardPath)
	out := map[string][]string{}
	var walk func(v any, title string)
	walk = func(v any, title string) {
		switch v := v.(type) {
		case map[string]any:
			if s, ok := v["title"].(string); ok {
				title = s
			}
			if s, ok := v["name"].(string); ok && v["type"] == "query" {
				title = "variable " + s
			}
			for k, c := range v {
				if s, ok := c.(string); ok && (k == "expr" || (k == "query" && strings.HasPrefix(title, "variable "))) {
					out[title] = append(out[title], s)
					continue
				}
				walk(c, title)
			}
		case []any:
			for _, c := range v {
				walk(c, title)
			}
		}
	}
	walk(doc, "")
	return out
}

var (
	// A metric selector: a name followed by its label matchers (the
	// dashboard always writes them, at least {job=~"$job"}), or the
	// argument of label_values().
	selectorRE     = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}`)
	labelValuesRE  = regexp.MustCompile(`label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_]+)\s*\)`)
	anyLanewayRE   = regexp.MustCompile(`\blaneway_[a-zA-Z0-9_]+`)
	matcherLabelRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
	groupingRE     = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
)

// scrapeLabels are added by Prometheus at scrape time.
var scrapeLabels = map[string]bool{"job": true, "instance": true}

// resolve maps a name used in PromQL to the exported family: a histogram
// is queried through its _bucket, _sum and _count series.
func resolve(fams map[string]family, name string) (family, bool) {
	if f, ok := fams[name]; ok && f.typ != dto.MetricType_HISTOGRAM {
		return f, true
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suf); ok {
			if f, ok := fams[base]; ok && f.typ == dto.MetricType_HISTOGRAM {
				if suf == "_bucket" {
					f.labels = maps(f.labels, "le")
				}
				return f, true
			}
		}
	}
	return family{}, false
}

func maps(m map[string]bool, extra string) map[string]bool {
	out := map[string]bool{extra: true}
	for k := range m {
		out[k] = true
	}
	return out
}

// TestGrafanaDashboardMatchesMetrics: every metric the shipped dashboard
// queries is one this package exports (histograms through their series),
// with the labels it filters and groups by, and rate()/increase() are
// applied to counters and histogram series only. A renamed or removed
// metric fails here instead of leaving an empty panel.
func TestGrafanaDashboardMatchesMetrics(t *testing.T) {
	raw, err := os.ReadFile(dashboardPath)
	require.NoError(t, err)
	fams := exported(t)
	all := exprs(t, raw)
	require.NotEmpty(t, all, "no PromQL in the dashboard")

	used := map[string]bool{}
	for title, list := range all {
		for _, e := range list {
			var metricsOfExpr []family
			names := map[string]bool{}
			for _, m := range selectorRE.FindAllStringSubmatch(e, -1) {
				names[m[1]] = true
				f, ok := resolve(fams, m[1])
				require.True(t, ok, "panel %q queries %s, which internal/metrics does not export:\n%s", title, m[1], e)
				for _, lm := range matcherLabelRE.FindAllStringSubmatch(m[2], -1) {
					require.True(t, f.labels[lm[1]] || scrapeLabels[lm[1]], "panel %q filters %s on label %q, which it does not have:\n%s", title, m[1], lm[1], e)
				}
				metricsOfExpr = append(metricsOfExpr, f)
				used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m[1], "_bucket"), "_sum"), "_count")] = true
			}
			for _, m := range labelValuesRE.FindAllStringSubmatch(e, -1) {
				names[m[1]] = true
				f, ok := resolve(fams, m[1])
				require.True(t, ok, "variable query %q uses %s, which internal/metrics does not export", e, m[1])
				require.True(t, f.labels[m[2]] || scrapeLabels[m[2]], "variable query %q asks for label %q of %s", e, m[2], m[1])
			}
			for _, n := range anyLanewayRE.FindAllString(e, -1) {
				require.True(t, names[n], "panel %q names %s outside a selector the test can check (write it as %s{...}):\n%s", title, n, n, e)
			}
			for _, g := range groupingRE.FindAllStringSubmatch(e, -1) {
				for _, l := range strings.Split(g[1], ",") {
					l = strings.TrimSpace(l)
					if l == "" || scrapeLabels[l] {
						continue
					}
					found := slices.ContainsFunc(metricsOfExpr, func(f family) bool { return f.labels[l] })
					require.True(t, found, "panel %q groups by %q, a label none of its metrics has:\n%s", title, l, e)
				}
			}
			if strings.Contains(e, "rate(") || strings.Contains(e, "increase(") {
				for _, m := range selectorRE.FindAllStringSubmatch(e, -1) {
					f, _ := resolve(fams, m[1])
					require.True(t, f.typ == dto.MetricType_COUNTER || f.typ == dto.MetricType_HISTOGRAM,
						"panel %q takes rate() or increase() of gauge %s:\n%s", title, m[1], e)
				}
			}
		}
	}
	// The dashboard covers every lane and outbox gauge the engine exports.
	for _, name := range []string{"laneway_stream_length", "laneway_consumer_lag", "laneway_dlq_depth",
		"laneway_outbox_rows", "laneway_end_to_end_latency_seconds", "laneway_relay_published_total"} {
		require.True(t, used[name], "the dashboard has no panel on %s", name)
	}
}
