package brokertest

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/laneway/laneway/lanewaybroker"
)

// Faulty wraps a Broker and makes Publish, Ack, ReadGroup, Ping or SetKey fail on demand,
// so engine tests can walk the ugly paths (Redis down while relaying, an ack
// lost after the handler ran, a read loop facing errors). Every other method
// passes through. The zero faults pass everything through; build it as
// &Faulty{Broker: b} or with NewFaulty. Safe for concurrent use.
type Faulty struct {
	lanewaybroker.Broker

	mu           sync.Mutex
	publishErr   error
	publishAfter bool
	ackErr       error
	readErr      error
	readAfter    bool
	pingErr      error
	setKeyErr    error
	injected     atomic.Int64
}

// NewFaulty wraps b with no faults set.
func NewFaulty(b lanewaybroker.Broker) *Faulty { return &Faulty{Broker: b} }

// FailPublish makes Publish return err without appending anything, until
// Heal.
func (f *Faulty) FailPublish(err error) {
	f.mu.Lock()
	f.publishErr, f.publishAfter = err, false
	f.mu.Unlock()
}

// FailPublishAfterAppend makes Publish append the entries and then return
// err, as when the reply is lost: the caller cannot tell and publishes again,
// which is the at-least-once duplicate case. Until Heal.
func (f *Faulty) FailPublishAfterAppend(err error) {
	f.mu.Lock()
	f.publishErr, f.publishAfter = err, true
	f.mu.Unlock()
}

// FailAck makes Ack return err without acknowledging anything, until Heal.
func (f *Faulty) FailAck(err error) {
	f.mu.Lock()
	f.ackErr = err
	f.mu.Unlock()
}

// LoseReadReplies makes ReadGroup read (the entries join the consumer's
// pending list) and then return err instead of them, until Heal: the reply
// lost to a dropped connection or a broker killed before it answered.
func (f *Faulty) LoseReadReplies(err error) {
	f.mu.Lock()
	f.readErr, f.readAfter = err, true
	f.mu.Unlock()
}

// FailReadGroup makes ReadGroup return err at once, without reading or
// blocking, until Heal.
func (f *Faulty) FailReadGroup(err error) {
	f.mu.Lock()
	f.readErr, f.readAfter = err, false
	f.mu.Unlock()
}

// FailPing makes Ping return err, until Heal (a readiness probe's view of
// an unreachable Redis).
func (f *Faulty) FailPing(err error) {
	f.mu.Lock()
	f.pingErr = err
	f.mu.Unlock()
}

// FailSetKey makes SetKey return err without writing, until Heal (an
// engine's heartbeat renewals during an outage).
func (f *Faulty) FailSetKey(err error) {
	f.mu.Lock()
	f.setKeyErr = err
	f.mu.Unlock()
}

// Heal removes every fault.
func (f *Faulty) Heal() {
	f.mu.Lock()
	f.publishErr, f.publishAfter, f.ackErr, f.readErr, f.readAfter, f.pingErr = nil, false, nil, nil, false, nil
	f.setKeyErr = nil
	f.mu.Unlock()
}

// Injected is the number of calls that failed because of a fault.
func (f *Faulty) Injected() int64 { return f.injected.Load() }

// Publish fails as set by FailPublish or FailPublishAfterAppend.
func (f *Faulty) Publish(ctx context.Context, pubs []lanewaybroker.Publication) ([]string, error) {
	f.mu.Lock()
	err, after := f.publishErr, f.publishAfter
	f.mu.Unlock()
	if err == nil {
		return f.Broker.Publish(ctx, pubs)
	}
	if after {
		if _, perr := f.Broker.Publish(ctx, pubs); perr != nil {
			return nil, perr
		}
	}
	f.injected.Add(1)
	return nil, err
}

// Ack fails as set by FailAck.
func (f *Faulty) Ack(ctx context.Context, acks []lanewaybroker.AckParams) error {
	f.mu.Lock()
	err := f.ackErr
	f.mu.Unlock()
	if err == nil {
		return f.Broker.Ack(ctx, acks)
	}
	f.injected.Add(1)
	return err
}

// ReadGroup fails as set by FailReadGroup.
func (f *Faulty) ReadGroup(ctx context.Context, p lanewaybroker.ReadParams) ([]lanewaybroker.StreamEntries, error) {
	f.mu.Lock()
	err, after := f.readErr, f.readAfter
	f.mu.Unlock()
	if err == nil {
		return f.Broker.ReadGroup(ctx, p)
	}
	if after {
		res, rerr := f.Broker.ReadGroup(ctx, p)
		if rerr != nil || len(res) == 0 {
			return res, rerr // nothing delivered: nothing to lose
		}
	}
	f.injected.Add(1)
	return nil, err
}

// Ping fails as set by FailPing.
func (f *Faulty) Ping(ctx context.Context) error {
	f.mu.Lock()
	err := f.pingErr
	f.mu.Unlock()
	if err == nil {
		return f.Broker.Ping(ctx)
	}
	f.injected.Add(1)
	return err
}

// SetKey fails as set by FailSetKey.
func (f *Faulty) SetKey(ctx context.Context, key, value string, ttl time.Duration) error {
	f.mu.Lock()
	err := f.setKeyErr
	f.mu.Unlock()
	if err == nil {
		return f.Broker.SetKey(ctx, key, value, ttl)
	}
	f.injected.Add(1)
	return err
}
