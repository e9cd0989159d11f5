package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/laneway/laneway/cli/internal/dlq"
	"github.com/laneway/laneway/cli/internal/inspect"
	"github.com/laneway/laneway/cli/internal/ops"
)

// requestTimeout bounds one endpoint's work; doctor adds its sample time.
const requestTimeout = 15 * time.Second

func (d *Dashboard) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /ui/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/lanes", http.StatusFound)
	})
	m.HandleFunc("GET /ui/static/{file}", d.static)
	m.HandleFunc("GET /ui/lanes", d.page("lanes", d.lanesView))
	m.HandleFunc("GET /ui/dlq", d.page("dlq", d.dlqView))
	m.HandleFunc("GET /ui/dlq/entry", d.page("entry", d.entryView))
	m.HandleFunc("GET /ui/outbox", d.page("outbox", d.outboxView))
	m.HandleFunc("GET /ui/doctor", d.page("doctor", d.doctorView))

	m.HandleFunc("GET /ui/api/lanes/status", d.read(d.apiLanesStatus))
	m.HandleFunc("GET /ui/api/lanes/history", d.read(func(ctx context.Context, r *http.Request) (any, error) {
		return d.hist.json(d.p.Interval), nil
	}))
	m.HandleFunc("GET /ui/api/dlq/list", d.read(d.apiDLQList))
	m.HandleFunc("GET /ui/api/dlq/inspect", d.read(d.apiDLQInspect))
	m.HandleFunc("GET /ui/api/outbox/status", d.read(d.apiOutboxStatus))
	m.HandleFunc("GET /ui/api/outbox/list", d.read(d.apiOutboxList))
	m.HandleFunc("GET /ui/api/doctor", d.read(d.apiDoctor))

	m.HandleFunc("/ui/api/dlq/replay", write(d, "dlq.replay", d.apiDLQReplay))
	m.HandleFunc("/ui/api/dlq/replay-all", write(d, "dlq.replay-all", d.apiDLQReplayAll))
	m.HandleFunc("/ui/api/dlq/purge", write(d, "dlq.purge", d.apiDLQPurge))
	m.HandleFunc("/ui/api/outbox/retry", write(d, "outbox.retry", d.apiOutboxRetry))
	m.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such dashboard page or endpoint: "+r.URL.Path+" (see docs/dashboard.md)")
	})
	d.mux = m
}

// badRequest marks an error in the request's parameters.
type badRequest struct{ error }

func (e badRequest) Unwrap() error { return e.error }

// statusOf maps an error to its HTTP status: the caller's mistakes are
// 4xx, everything else (Redis or the database unreachable) is 503, since
// retrying later may work.
func statusOf(err error) int {
	var br badRequest
	switch {
	case errors.As(err, &br), errors.Is(err, dlq.ErrUnknownStream), errors.Is(err, dlq.ErrBadID),
		errors.Is(err, dlq.ErrAmbiguous), errors.Is(err, dlq.ErrUnreadTarget):
		return http.StatusBadRequest
	case errors.Is(err, dlq.ErrNotFound), errors.Is(err, ops.ErrNotRetryable):
		return http.StatusNotFound
	}
	return http.StatusServiceUnavailable
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// read serves a JSON endpoint computed by fn.
func (d *Dashboard) read(fn func(context.Context, *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
		defer cancel()
		v, err := fn(ctx, r)
		if err != nil {
			writeError(w, statusOf(err), err.Error())
			return
		}
		writeJSON(w, v)
	}
}

func intParam(r *http.Request, name string, def int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, badRequest{fmt.Errorf("%s=%q: want a number of at least 1", name, s)}
	}
	return n, nil
}

// lanesStatus is `laneway lanes status --json [--stream S]`.
func (d *Dashboard) lanesStatus(ctx context.Context, stream string) (inspect.Status, error) {
	topo, err := d.topo.Filter(stream)
	if err != nil {
		return inspect.Status{}, badRequest{err}
	}
	b, err := d.p.Broker(ctx)
	if err != nil {
		return inspect.Status{}, err
	}
	in := inspect.New(b, topo, inspect.Options{ActiveIdle: ops.ActiveIdle(d.p.Config)})
	return in.Status(ctx, d.p.Config)
}

func (d *Dashboard) apiLanesStatus(ctx context.Context, r *http.Request) (any, error) {
	return d.lanesStatus(ctx, r.URL.Query().Get("stream"))
}

// dlqListParams reads the query of the DLQ list: the flags of
// `laneway dlq list`.
func dlqListParams(r *http.Request) (dlq.ListParams, error) {
	q := r.URL.Query()
	limit, err := intParam(r, "limit", dlq.LimitDefault)
	if err != nil {
		return dlq.ListParams{}, err
	}
	return dlq.ListParams{Stream: q.Get("stream"), Limit: limit, Filter: dlq.Filter{
		Handler: q.Get("handler"), Reason: q.Get("reason"), Type: q.Get("type"),
	}}, nil
}

func (d *Dashboard) apiDLQList(ctx context.Context, r *http.Request) (any, error) {
	p, err := dlqListParams(r)
	if err != nil {
		return nil, err
	}
	m, err := d.dlqManager(ctx)
	if err != nil {
		return nil, err
	}
	return ops.ListDLQ(ctx, m, p)
}

func (d *Dashboard) apiDLQInspect(ctx context.Context, r *http.Request) (any, error) {
	q := r.URL.Query()
	if q.Get("id") == "" {
		return nil, badRequest{errors.New("id is required: the DLQ entry id, as the list shows it")}
	}
	m, err := d.dlqManager(ctx)
	if err != nil {
		return nil, err
	}
	return ops.InspectDLQ(ctx, m, q.Get("id"), q.Get("stream"))
}

func (d *Dashboard) apiOutboxStatus(ctx context.Context, r *http.Request) (any, error) {
	st, db, err := d.store(ctx)
	if err != nil {
		return nil, err
	}
	return ops.CountOutbox(ctx, st, db)
}

func (d *Dashboard) apiOutboxList(ctx context.Context, r *http.Request) (any, error) {
	status, err := ops.ParseOutboxStatus(r.URL.Query().Get("status"))
	if err != nil {
		return nil, badRequest{err}
	}
	limit, err := intParam(r, "limit", 50)
	if err != nil {
		return nil, err
	}
	st, db, err := d.store(ctx)
	if err != nil {
		return nil, err
	}
	return ops.ListOutbox(ctx, st, db, status, limit)
}

// doctor is `laneway doctor --json --sample S`; an unreachable broker is
// a failed check, as in the CLI, not an error.
func (d *Dashboard) doctor(ctx context.Context, sample time.Duration) (ops.Doctor, error) {
	in, berr := d.inspector(ctx)
	p := inspect.DoctorParams{Config: d.p.Config, DomainDir: d.p.DomainDir, Sample: sample, BrokerErr: berr, Topology: d.topo}
	if berr == nil {
		if b, _ := d.p.Broker(ctx); b != nil {
			if err := b.Ping(ctx); err != nil {
				in, p.BrokerErr = nil, err
			}
		}
	}
	return ops.RunDoctor(ctx, in, d.topo.Domain, p)
}

func (d *Dashboard) apiDoctor(ctx context.Context, r *http.Request) (any, error) {
	sample := 2 * time.Second
	if s := r.URL.Query().Get("sample"); s != "" {
		v, err := time.ParseDuration(s)
		if err != nil || v <= 0 || v > 10*time.Second {
			return nil, badRequest{fmt.Errorf("sample=%q: want a duration from 1ms to 10s, such as 2s", s)}
		}
		sample = v
	}
	return d.doctor(ctx, sample)
}

// Write bodies.
type (
	replayBody struct {
		ID     string `json:"id"`
		Stream string `json:"stream"`
		To     string `json:"to"`
	}
	streamBody struct {
		Stream string `json:"stream"`
		To     string `json:"to"`
	}
	retryBody struct {
		ID        int64 `json:"id"`
		Abandoned bool  `json:"abandoned"`
	}
)

func writeCtx(r *http.Request) (context.Context, context.CancelFunc) {
	// A write that started finishes even if the page goes away.
	return context.WithTimeout(context.WithoutCancel(r.Context()), requestTimeout)
}

func (d *Dashboard) apiDLQReplay(r *http.Request, b replayBody) (any, []any, error) {
	touched := []any{"dlq_id", b.ID, "dlq_stream", b.Stream, "to", b.To}
	to, err := dlq.ParseTarget(b.To)
	if err != nil {
		return nil, touched, badRequest{err}
	}
	ctx, cancel := writeCtx(r)
	defer cancel()
	m, err := d.dlqManager(ctx)
	if err != nil {
		return nil, touched, err
	}
	res, err := ops.ReplayDLQ(ctx, m, dlq.ReplayParams{ID: b.ID, Stream: b.Stream, To: to})
	if err != nil {
		return nil, touched, err
	}
	return res, []any{"dlq_id", res.DLQID, "dlq_stream", res.DLQStream, "target", res.Target, "new_id", res.NewID}, nil
}

func (d *Dashboard) apiDLQReplayAll(r *http.Request, b streamBody) (any, []any, error) {
	touched := []any{"dlq_stream", b.Stream, "to", b.To}
	if b.Stream == "" {
		return nil, touched, badRequest{errors.New("stream is required: the DLQ stream to replay")}
	}
	to, err := dlq.ParseTarget(b.To)
	if err != nil {
		return nil, touched, badRequest{err}
	}
	ctx, cancel := writeCtx(r)
	defer cancel()
	m, err := d.dlqManager(ctx)
	if err != nil {
		return nil, touched, err
	}
	res, err := ops.ReplayAllDLQ(ctx, m, b.Stream, to)
	touched = append(touched, "replayed", res.Replayed, "targets", res.Targets, "skipped", len(res.Skipped))
	return res, touched, err
}

func (d *Dashboard) apiDLQPurge(r *http.Request, b streamBody) (any, []any, error) {
	touched := []any{"dlq_stream", b.Stream}
	if b.Stream == "" {
		return nil, touched, badRequest{errors.New("stream is required: the DLQ stream to purge")}
	}
	ctx, cancel := writeCtx(r)
	defer cancel()
	m, err := d.dlqManager(ctx)
	if err != nil {
		return nil, touched, err
	}
	res, err := ops.PurgeDLQ(ctx, m, b.Stream)
	return res, append(touched, "purged", res.Purged), err
}

func (d *Dashboard) apiOutboxRetry(r *http.Request, b retryBody) (any, []any, error) {
	touched := []any{"outbox_id", b.ID, "abandoned", b.Abandoned}
	if (b.ID > 0) == b.Abandoned {
		return nil, touched, badRequest{errors.New("give an outbox id (a positive number) or abandoned: true, not both")}
	}
	ctx, cancel := writeCtx(r)
	defer cancel()
	st, db, err := d.store(ctx)
	if err != nil {
		return nil, touched, err
	}
	res, err := ops.RetryOutbox(ctx, st, db, b.ID, b.Abandoned)
	return res, append(touched, "reset", res.Reset), err
}
