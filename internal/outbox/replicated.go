package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/laneway/laneway/lanewaybroker"
)

// ReplicasTimeoutDefault bounds the wait for replicas when
// Config.ReplicasTimeout is not set.
const ReplicasTimeoutDefault = time.Second

// Replicated publishing.
//
// Redis replicates asynchronously: an XADD the primary acknowledged may not
// have reached a replica when the primary dies, and the replica Sentinel
// promotes then lacks it. Once the relay has marked the row published, that
// event would be gone for good. With MinReplicasAcked > 0 the relay follows
// each batch's XADDs with WAIT and marks the rows published only when
// enough replicas hold them; otherwise the publish counts as failed, the
// rows keep their outbox copy and are retried after their back-off. A retry
// of a batch that did reach the replicas (the reply was lost) appends the
// entries again: delivery stays at-least-once, never at-most-once.

// checkReplicated refuses to start a relay whose broker cannot wait for
// replicas while the configuration asks for it.
func (r *Relay) checkReplicated() error {
	if r.cfg.MinReplicasAcked <= 0 {
		return nil
	}
	if _, ok := r.broker.(lanewaybroker.ReplicatedPublisher); !ok {
		return fmt.Errorf("outbox: min_replicas_acked = %d, but this broker cannot wait for replicas: use a Redis broker or set it to 0", r.cfg.MinReplicasAcked)
	}
	return nil
}

// publishEntries appends pubs, waiting for replicas when configured.
func (r *Relay) publishEntries(ctx context.Context, pubs []lanewaybroker.Publication) ([]string, error) {
	if r.cfg.MinReplicasAcked <= 0 {
		return r.broker.Publish(ctx, pubs)
	}
	rp, ok := r.broker.(lanewaybroker.ReplicatedPublisher)
	if !ok {
		return nil, errors.New("outbox: the broker cannot wait for replicas")
	}
	return rp.PublishReplicated(ctx, pubs, r.cfg.MinReplicasAcked, r.cfg.ReplicasTimeout)
}
