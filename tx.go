package laneway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
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
	dom      *Domain
	st       lanewaystore.Tx
	priority Priority
	corrID   string
	causeID  string
	rows     []lanewaystore.OutboxRow
}

// Priority is the priority stamped on every outbox row this unit of work writes.
func (tx *Tx) Priority() Priority { return tx.priority }

// Exec runs the caller's SQL in the transaction ($1, $2 placeholders on every store).
func (tx *Tx) Exec(ctx context.Context, sql string, args ...any) (int64, error) {
	return tx.st.Exec(ctx, sql, args...)
}

// Query runs the caller's SQL in the transaction.
func (tx *Tx) Query(ctx context.Context, sql string, args ...any) (lanewaystore.Rows, error) {
	return tx.st.Query(ctx, sql, args...)
}

// QueryRow runs the caller's single-row SQL in the transaction.
func (tx *Tx) QueryRow(ctx context.Context, sql string, args ...any) lanewaystore.Row {
	return tx.st.QueryRow(ctx, sql, args...)
}

// MarkProcessed records that handler processed messageID in this
// transaction; false means it already had, and the caller should skip the
// work (effectively-once projections: the marker commits with the read model).
func (tx *Tx) MarkProcessed(ctx context.Context, handler, messageID string) (bool, error) {
	return tx.st.MarkProcessed(ctx, handler, messageID)
}

// Save writes the aggregate with optimistic concurrency and queues one
// outbox row per event it raised. A concurrent writer that saved first makes
// Save return ErrVersionConflict.
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
	if err := tx.st.SaveAggregate(ctx, lanewaystore.SaveAggregateParams{
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
			id: stream + "-" + seq, kind: envelope.KindEvent, name: em.name, version: em.version,
			category: meta.category, stream: stream, seq: seq, payload: ev,
			priority: tx.priority, corrID: tx.corrID, causeID: tx.causeID, at: now,
		})
		if err != nil {
			return err
		}
		tx.rows = append(tx.rows, row)
	}
	root.pending = nil
	return nil
}

type outboxSpec struct {
	id, kind, name, category, stream, seq, corrID, causeID string
	version                                                int
	payload                                                any
	priority                                               Priority
	at                                                     time.Time
}

func (d *Domain) outboxRow(s outboxSpec) (lanewaystore.OutboxRow, error) {
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
	typ := envelope.TypeString(d.name, s.name, s.version)
	md := envelope.Metadata{
		Headers:  envelope.Headers{ID: s.id, Time: s.at.Format(time.RFC3339Nano), Type: typ, Stream: s.stream},
		Envelope: envelope.Integrity{SpecVersion: envelope.SpecVersion, Checksum: sum},
		Domain: envelope.Domain{
			Kind: s.kind, StreamCategory: s.category, Priority: int(s.priority), Version: s.version,
			SequenceID: s.seq, CorrelationID: s.corrID, CausationID: s.causeID,
		},
	}
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
