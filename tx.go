package laneway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/lanewaystore"
)

// Tx is a unit of work: one database transaction holding aggregate state,
// the outbox rows of every event raised, and the handler's own read-model
// writes (Exec/Query). Everything commits together or not at all.
type Tx struct {
	app *App
	dom *Domain
	// st is the store transaction; nil until first use when lazy is set.
	st       lanewaystore.Tx
	lazy     *lazyTx
	priority Priority
	corrID   string
	causeID  string
	rows     []lanewaystore.OutboxRow
	traced   bool // rows carry the trace context of Save's ctx
}

// Priority is the priority stamped on every outbox row this unit of work writes.
func (tx *Tx) Priority() Priority { return tx.priority }

// Exec runs the caller's SQL in the transaction ($1, $2 placeholders on every store).
func (tx *Tx) Exec(ctx context.Context, sql string, args ...any) (int64, error) {
	st, err := tx.store()
	if err != nil {
		return 0, err
	}
	return st.Exec(ctx, sql, args...)
}

// Query runs the caller's SQL in the transaction.
func (tx *Tx) Query(ctx context.Context, sql string, args ...any) (lanewaystore.Rows, error) {
	st, err := tx.store()
	if err != nil {
		return nil, err
	}
	return st.Query(ctx, sql, args...)
}

// QueryRow runs the caller's single-row SQL in the transaction.
func (tx *Tx) QueryRow(ctx context.Context, sql string, args ...any) lanewaystore.Row {
	st, err := tx.store()
	if err != nil {
		return errRow{err}
	}
	return st.QueryRow(ctx, sql, args...)
}

// MarkProcessed records that handler processed messageID in this
// transaction; false means it already had, and the caller should skip the
// work (effectively-once projections: the marker commits with the read model).
func (tx *Tx) MarkProcessed(ctx context.Context, handler, messageID string) (bool, error) {
	st, err := tx.store()
	if err != nil {
		return false, err
	}
	return st.MarkProcessed(ctx, handler, messageID)
}

// Save writes the aggregate with optimistic concurrency and queues one
// outbox row per event it raised. A concurrent writer that saved first makes
// the unit of work fail with ErrVersionConflict (errors.Is) and write
// nothing. On SQLite Save returns that error itself; on PostgreSQL the write
// travels with the commit (one round trip less per command), so Process
// returns it, or the handler's next database call if there is one.
func (tx *Tx) Save(ctx context.Context, agg Aggregate) error {
	root := agg.aggregateRoot()
	meta, err := tx.dom.aggregateFor(reflect.TypeOf(agg).Elem())
	if err != nil {
		return err
	}
	if root.id == "" {
		return fmt.Errorf("save %s: empty id (create aggregates with laneway.New)", meta.name)
	}
	data, err := json.Marshal(agg)
	if err != nil {
		return fmt.Errorf("encode %s %s: %w", meta.name, root.id, err)
	}
	st, err := tx.store()
	if err != nil {
		return fmt.Errorf("save %s %s: %w", meta.name, root.id, err)
	}
	save := st.SaveAggregate
	if q, ok := st.(lanewaystore.QueuedSaver); ok {
		save = q.QueueSaveAggregate // PostgreSQL: sent with the commit, conflict reported by it
	}
	if err := save(ctx, lanewaystore.SaveAggregateParams{
		Category: meta.category, ID: root.id, ExpectedVersion: root.version, Data: data,
	}); err != nil {
		return fmt.Errorf("save %s %s: %w", meta.name, root.id, err)
	}
	root.version++
	stream := meta.category + "-" + root.id
	now := time.Now().UTC()
	for i, ev := range root.pending {
		em, ok := tx.dom.eventsByType[reflect.TypeOf(ev)]
		if !ok {
			return fmt.Errorf("save %s %s: event type %T is not registered (laneway.RegisterEvent)", meta.name, root.id, ev)
		}
		seq := fmt.Sprintf("%d.%d", root.version, i+1)
		row, err := tx.dom.outboxRow(outboxSpec{
			id: stream + "-" + seq, class: envelope.ClassEvent, name: em.name, version: em.version,
			category: meta.category, stream: stream, seq: seq, payload: ev,
			priority: tx.priority, corrID: tx.corrID, causeID: tx.causeID, at: now, trace: tx.traceOf(ctx),
		})
		if err != nil {
			return err
		}
		tx.rows = append(tx.rows, row)
	}
	root.pending = nil
	return nil
}

// store returns the store transaction, beginning it on first use.
func (tx *Tx) store() (lanewaystore.Tx, error) {
	if tx.st != nil {
		return tx.st, nil
	}
	if tx.lazy == nil {
		return nil, errors.New("laneway: transaction used after its unit of work ended")
	}
	if tx.lazy.store == nil {
		return nil, ErrNoDatabase
	}
	st, err := tx.lazy.get()
	if err != nil {
		return nil, err
	}
	tx.st = st
	return st, nil
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// lazyTx begins a unit of work's database transaction when the handler
// first touches the database, not before it starts. A handler that never
// does (one that sends an email) then holds no connection while it works;
// on SQLite, whose single writer connection every unit of work shares, a
// slow handler inside an eager transaction would stall every other writer
// (producers, projectors, the relay) for its whole duration.
//
// Store.InTx takes a callback, so the transaction runs in a goroutine that
// waits for the unit of work's outcome; finish (always called, deferred by
// runInTx) hands it over and waits for the commit or rollback.
type lazyTx struct {
	store   lanewaystore.Store
	ctx     context.Context
	st      lanewaystore.Tx
	err     error      // a failed begin, returned on every later use
	outcome chan error // the unit of work's result, to the InTx goroutine
	done    chan error // InTx's result
}

func (l *lazyTx) get() (lanewaystore.Tx, error) {
	if l.st != nil || l.err != nil {
		return l.st, l.err
	}
	ready := make(chan lanewaystore.Tx, 1)
	l.outcome = make(chan error, 1)
	l.done = make(chan error, 1)
	go func() {
		l.done <- l.store.InTx(l.ctx, func(_ context.Context, st lanewaystore.Tx) error {
			ready <- st
			return <-l.outcome
		})
	}()
	select {
	case st := <-ready:
		l.st = st
		return st, nil
	case err := <-l.done:
		l.err = err
		return nil, err
	}
}

// finish commits the transaction when err is nil and rolls it back
// otherwise; it returns err, or the commit's error. Without a transaction
// it only reports a failed begin the caller may have ignored.
func (l *lazyTx) finish(err error) error {
	if l.st == nil {
		if err == nil {
			err = l.err
		}
		return err
	}
	l.st = nil
	l.outcome <- err
	cerr := <-l.done
	if err != nil {
		return err
	}
	return cerr
}

type outboxSpec struct {
	id, class, name, category, stream, seq, corrID, causeID string
	version                                                 int
	payload                                                 any
	priority                                                Priority
	at                                                      time.Time
	trace                                                   traceContext
}

func (d *Domain) outboxRow(s outboxSpec) (lanewaystore.OutboxRow, error) {
	return encodeRow(d.name, s)
}

// encodeRow builds the outbox row of a message of domain; EncodeEvent
// builds its entries from the same row, so both write identical bytes.
func encodeRow(domain string, s outboxSpec) (lanewaystore.OutboxRow, error) {
	raw, err := json.Marshal(s.payload)
	if err != nil {
		return lanewaystore.OutboxRow{}, fmt.Errorf("encode %s: %w", s.name, err)
	}
	// The payload is stored in its canonical form (keys sorted, non-ASCII
	// escaped, as the reference's checksum serializes it): computing the
	// checksum produces those bytes anyway, and a consumer then verifies the
	// checksum by hashing the bytes it reads, without re-serializing them.
	payload, sum, err := envelope.CanonicalChecksum(raw)
	if err != nil {
		return lanewaystore.OutboxRow{}, fmt.Errorf("checksum %s: %w", s.name, err)
	}
	typ := envelope.TypeString(domain, s.name, s.version)
	md := envelope.Metadata{
		Headers:  envelope.Headers{ID: s.id, Time: s.at.Format(time.RFC3339Nano), Type: typ, Stream: s.stream},
		Envelope: envelope.Integrity{SpecVersion: envelope.SpecVersion, Checksum: sum},
		Domain: envelope.Domain{
			Class: s.class, StreamCategory: s.category, Priority: int(s.priority), Version: s.version,
			SequenceID: s.seq, CorrelationID: s.corrID, CausationID: s.causeID,
		},
		Extensions: s.trace.ext,
	}
	md.Headers.TraceParent = s.trace.parent
	mdJSON, err := json.Marshal(md)
	if err != nil {
		return lanewaystore.OutboxRow{}, err
	}
	return lanewaystore.OutboxRow{
		MessageID: s.id, StreamName: s.stream, StreamCategory: s.category, Type: typ,
		Data: payload, Metadata: mdJSON, Priority: int(s.priority), CreatedAt: s.at,
	}, nil
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
