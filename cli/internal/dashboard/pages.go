package dashboard

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/laneway/laneway/cli/internal/dlq"
	"github.com/laneway/laneway/cli/internal/inspect"
	"github.com/laneway/laneway/cli/internal/ops"
	"github.com/laneway/laneway/internal/lanes"
	"github.com/laneway/laneway/internal/uplot"
	"github.com/laneway/laneway/lanewaystore"
)

//go:embed templates/*.html static/*
var assets embed.FS

var funcs = template.FuncMap{
	"age": func(secs float64) string {
		return time.Duration(secs * float64(time.Second)).Truncate(time.Second).String()
	},
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return time.Since(t).Round(time.Second).String() + " ago"
	},
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"tsp": func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"pct":  func(f float64) string { return fmt.Sprintf("%.0f%%", f*100) },
	"pctw": func(f float64) string { return fmt.Sprintf("%.1f", f*100) },
	"dash": func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	},
	"clip": func(s string, n int) string {
		s = strings.Join(strings.Fields(s), " ")
		if r := []rune(s); len(r) > n {
			return string(r[:n-1]) + "…"
		}
		return s
	},
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"lower": strings.ToLower,
	// dict builds a map from key, value pairs (template arguments).
	"dict": func(kv ...any) (map[string]any, error) {
		if len(kv)%2 != 0 {
			return nil, fmt.Errorf("dict: odd number of arguments")
		}
		m := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			k, ok := kv[i].(string)
			if !ok {
				return nil, fmt.Errorf("dict: key %v is not a string", kv[i])
			}
			m[k] = kv[i+1]
		}
		return m, nil
	},
}

// pages are the template sets, one per page: the layout and the page's
// "content" (static) and "live" (refreshed) parts.
var pages = map[string]*template.Template{}

func init() {
	for _, name := range []string{"lanes", "dlq", "entry", "outbox", "doctor"} {
		pages[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/"+name+".html"))
	}
}

// pageData is what every page template gets.
type pageData struct {
	Page   string
	Title  string
	Domain string
	Env    string
	Write  bool
	Live   bool // the page refreshes its live part
	Err    string
	Data   any
}

var titles = map[string]string{"lanes": "Lanes", "dlq": "Dead letters", "entry": "Dead letter", "outbox": "Outbox", "doctor": "Doctor"}

// page serves one HTML page, or only its live part with ?fragment=1 (what
// the page's script fetches every refresh). A failure to read the data is
// shown in the page, which keeps refreshing until it can read again.
func (d *Dashboard) page(name string, view func(context.Context, *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		timeout := requestTimeout
		if name == "doctor" {
			timeout += 2 * time.Second
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		data, err := view(ctx, r)
		pd := pageData{Page: name, Title: titles[name], Domain: d.topo.Domain, Env: d.p.Config.EnvName(), Write: d.p.Write,
			Live: name != "entry", Data: data}
		status := http.StatusOK
		if err != nil {
			pd.Err = err.Error()
			if s := statusOf(err); s < 500 {
				status = s
			}
		}
		which := "layout"
		if r.URL.Query().Get("fragment") == "1" {
			which = "live"
		}
		var buf bytes.Buffer
		if err := pages[name].ExecuteTemplate(&buf, which, pd); err != nil {
			d.log.Error("dashboard template", "page", name, "err", err)
			http.Error(w, "template error: "+err.Error(), http.StatusInternalServerError)
			return
		}
		securityHeaders(w)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		_, _ = buf.WriteTo(w)
	}
}

// securityHeaders: scripts and styles only from the dashboard itself (no
// inline script), never framed (clickjacking a write button).
func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
}

// static serves the script, the stylesheet and the vendored uPlot.
func (d *Dashboard) static(w http.ResponseWriter, r *http.Request) {
	var body, ctype string
	switch f := r.PathValue("file"); f {
	case "uPlot.iife.min.js":
		body, ctype = uplot.JS, "text/javascript"
	case "uPlot.min.css":
		body, ctype = uplot.CSS, "text/css"
	case "uPlot.LICENSE.txt":
		body, ctype = uplot.License, "text/plain"
	case "app.js", "app.css":
		b, err := assets.ReadFile("static/" + f)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		body, ctype = string(b), "text/javascript"
		if strings.HasSuffix(f, ".css") {
			ctype = "text/css"
		}
	default:
		http.NotFound(w, r)
		return
	}
	securityHeaders(w)
	w.Header().Set("Content-Type", ctype+"; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write([]byte(body))
}

// Lanes page.

type lanesData struct {
	St              inspect.Status
	Sampled         bool // St comes from the sampler (false: taken for this request)
	Rows            []laneRow
	Draining        []drainRow
	FileFingerprint string
	Charts          []chartDef
	Keep, Every     time.Duration
}

type laneRow struct {
	inspect.LaneStatus
	Category string
	Kind     lanes.Class
	First    bool // first lane of its category
}

type drainRow struct {
	Stream    string
	Unhandled int64
	Peak      int64
	Done      float64
	Rate      float64
	ETA       string
}

type chartDef struct{ Category, Primary, Backfill string }

func (d *Dashboard) charts() []chartDef {
	var out []chartDef
	for _, c := range d.topo.Categories {
		out = append(out, chartDef{Category: c.Name, Primary: c.Name, Backfill: d.topo.Backfill(c.Name)})
	}
	return out
}

func (d *Dashboard) lanesView(ctx context.Context, r *http.Request) (any, error) {
	st, drains, err := d.hist.snapshot()
	data := lanesData{FileFingerprint: d.p.Config.LanesFingerprint(), Charts: d.charts(), Sampled: true, Keep: d.p.Keep, Every: d.p.Interval}
	if st.TakenAt.IsZero() {
		// Before the first sample: read now, so the page is never empty.
		data.Sampled = false
		if st, err = d.lanesStatus(ctx, ""); err != nil {
			return data, err
		}
	}
	data.St = st
	for _, cs := range st.Categories {
		for i, l := range cs.Lanes {
			data.Rows = append(data.Rows, laneRow{LaneStatus: l, Category: cs.Category, Kind: cs.Class, First: i == 0})
			dr, ok := drains[l.Stream]
			if l.Lane != lanes.Backfill || !ok || dr.Peak == 0 {
				continue
			}
			row := drainRow{Stream: l.Stream, Unhandled: dr.Unhandled, Peak: dr.Peak, Done: dr.Done(), Rate: dr.Rate, ETA: "no progress yet"}
			switch {
			case dr.ETA > 0:
				row.ETA = dr.ETA.Round(time.Second).String()
			case dr.Rate < 0:
				row.ETA = "growing"
			}
			data.Draining = append(data.Draining, row)
		}
	}
	// A failed latest sample is shown above the last good one.
	return data, err
}

// DLQ pages.

type dlqData struct {
	List     ops.DLQList
	Params   dlq.ListParams
	Handlers []string
	Filtered bool
}

func (d *Dashboard) handlerNames() []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range d.topo.Categories {
		for _, g := range c.Groups {
			if !seen[g] {
				seen[g] = true
				out = append(out, g)
			}
		}
	}
	return out
}

func (d *Dashboard) dlqView(ctx context.Context, r *http.Request) (any, error) {
	p, err := dlqListParams(r)
	data := dlqData{Params: p, Handlers: d.handlerNames(), Filtered: !p.Filter.IsZero()}
	if err != nil {
		return data, err
	}
	m, err := d.dlqManager(ctx)
	if err != nil {
		return data, err
	}
	data.List, err = ops.ListDLQ(ctx, m, p)
	return data, err
}

type entryData struct {
	E       ops.DLQEntry
	Payload string // indented
	Targets []targetOpt
	Found   bool
}

type targetOpt struct{ Value, Label string }

func (d *Dashboard) entryView(ctx context.Context, r *http.Request) (any, error) {
	q := r.URL.Query()
	var data entryData
	m, err := d.dlqManager(ctx)
	if err != nil {
		return data, err
	}
	if data.E, err = ops.InspectDLQ(ctx, m, q.Get("id"), q.Get("stream")); err != nil {
		return data, err
	}
	data.Found = true
	switch p := data.E.Payload.(type) {
	case json.RawMessage:
		var buf bytes.Buffer
		if json.Indent(&buf, p, "", "  ") == nil {
			data.Payload = buf.String()
		} else {
			data.Payload = string(p)
		}
	case string:
		data.Payload = p
	}
	for _, t := range []dlq.Target{dlq.ToOriginal, dlq.ToPrimary, dlq.ToBackfill} {
		if s, err := m.TargetOf(data.E.Entry, t); err == nil {
			label := string(t) + " (" + s + ")"
			data.Targets = append(data.Targets, targetOpt{Value: string(t), Label: label})
		}
	}
	return data, nil
}

// Outbox page.

type outboxData struct {
	Status    ops.OutboxStatus
	Statuses  []string
	Failed    []ops.OutboxRow
	Abandoned []ops.OutboxRow
	Age       string
}

func (d *Dashboard) outboxView(ctx context.Context, r *http.Request) (any, error) {
	var data outboxData
	for _, s := range ops.OutboxStatuses {
		data.Statuses = append(data.Statuses, string(s))
	}
	st, db, err := d.store(ctx)
	if err != nil {
		return data, err
	}
	if data.Status, err = ops.CountOutbox(ctx, st, db); err != nil {
		return data, err
	}
	if a := data.Status.OldestPendingAgeSeconds; a != nil {
		data.Age = time.Duration(*a * float64(time.Second)).Round(time.Second).String()
	}
	if data.Failed, err = ops.ListOutbox(ctx, st, db, lanewaystore.StatusFailed, 50); err != nil {
		return data, err
	}
	data.Abandoned, err = ops.ListOutbox(ctx, st, db, lanewaystore.StatusAbandoned, 50)
	return data, err
}

func (d *Dashboard) doctorView(ctx context.Context, r *http.Request) (any, error) {
	return d.doctor(ctx, 2*time.Second)
}
