package consumer

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/laneway/laneway/internal/envelope"
	"github.com/laneway/laneway/lanewaybroker"
)

func (c *Consumer) ack(t *tracked) {
	delete(c.owned, t.key)
	if c.ackN == 0 {
		c.ackSince = time.Now()
	}
	c.acks[t.msg.Stream] = append(c.acks[t.msg.Stream], t.msg.EntryID)
	c.ackN++
}

// maybeFlushAcks sends the collected acks in one pipelined call when forced,
// when a batch is full, when they have waited ackFlushEvery, or when the
// consumer has nothing else to do. The call runs on its own goroutine, one
// at a time, so the dispatcher keeps starting handlers meanwhile; acks
// collected while one is in flight go out when it completes.
func (c *Consumer) maybeFlushAcks(force bool) {
	if c.ackN == 0 || c.ackSending != nil {
		return
	}
	idle := c.sl.PrimaryInflight+c.sl.BackfillInflight == 0
	if !force && !idle && c.ackN < c.cfg.Count && time.Since(c.ackSince) < ackFlushEvery {
		return
	}
	if !force && time.Now().Before(c.retryAt) {
		return
	}
	params := c.takeAcks()
	c.ackSending = params
	go func() {
		ctx, cancel := c.op()
		defer cancel()
		c.ackDone <- c.b.Ack(ctx, params)
	}()
}

// takeAcks empties the collected acks into AckParams.
func (c *Consumer) takeAcks() []lanewaybroker.AckParams {
	params := make([]lanewaybroker.AckParams, 0, len(c.acks))
	for s, ids := range c.acks {
		params = append(params, lanewaybroker.AckParams{Stream: s, Group: c.cfg.Group, IDs: ids})
	}
	c.acks = map[string][]string{}
	c.ackN = 0
	return params
}

// onAcked settles the ack in flight; failed acks are collected again.
func (c *Consumer) onAcked(err error) {
	sent := c.ackSending
	c.ackSending = nil
	if err == nil {
		c.brokerOK()
		return
	}
	for _, a := range sent {
		if c.ackN == 0 {
			c.ackSince = time.Now()
		}
		c.acks[a.Stream] = append(c.acks[a.Stream], a.IDs...)
		c.ackN += len(a.IDs)
	}
	c.brokerFailed("ack", err)
}

// flushAcksNow waits for the ack in flight and sends the rest, for
// shutdown and before a reclaim.
func (c *Consumer) flushAcksNow() {
	if c.ackSending != nil {
		c.onAcked(<-c.ackDone)
	}
	if c.ackN == 0 {
		return
	}
	params := c.takeAcks()
	c.ackSending = params
	ctx, cancel := c.op()
	err := c.b.Ack(ctx, params)
	cancel()
	c.onAcked(err)
}

// ackPending reports whether id of stream is handled and waiting for its ack.
func (c *Consumer) ackPending(stream, id string) bool {
	if slices.Contains(c.acks[stream], id) {
		return true
	}
	for _, a := range c.ackSending {
		if a.Stream == stream && slices.Contains(a.IDs, id) {
			return true
		}
	}
	return false
}

// deadLetter publishes t to its lane's DLQ and acks it; when the publish
// fails t stays pending and is tried again after RetryDelay.
func (c *Consumer) deadLetter(t *tracked) {
	dlq := c.cfg.Naming.DLQ(t.msg.Stream)
	if !c.cfg.EnableDLQ {
		c.cfg.Logger.Warn("dropping message (DLQ disabled)", "group", c.cfg.Group, "stream", t.msg.Stream, "id", t.msg.EntryID, "reason", t.lastErr)
		c.nDLQ.Add(1)
		c.onDeadLetter(t, "")
		c.ack(t)
		return
	}
	meta := envelope.DLQMetadata{
		OriginalStream: t.msg.Stream, OriginalID: t.msg.EntryID,
		ConsumerGroup: c.cfg.Group, Consumer: c.cfg.Consumer,
		FailedAt:   t.failedAt.UTC().Format(time.RFC3339Nano),
		RetryCount: t.msg.Attempt, FailureReason: t.lastErr,
	}
	var data []byte
	var err error
	if _, hasData := t.entry.Fields["data"]; !hasData && t.entry.Fields != nil {
		raw, _ := json.Marshal(t.entry.Fields)
		data, err = envelope.NewDLQRaw(string(raw), meta)
	} else {
		data, err = envelope.NewDLQFromEntry([]byte(t.entry.Data), meta)
	}
	if err == nil {
		ctx, cancel := c.op()
		_, err = c.b.Publish(ctx, []lanewaybroker.Publication{{Stream: dlq, Data: string(data)}})
		cancel()
	}
	if err != nil {
		c.cfg.Logger.Error("DLQ publish failed; message stays pending", "group", c.cfg.Group, "stream", t.msg.Stream, "id", t.msg.EntryID, "dlq", dlq, "error", err)
		t.st = stDLQWait
		c.retries.add(retryItem{due: time.Now().Add(c.cfg.RetryDelay), key: t.key})
		return
	}
	c.cfg.Logger.Info("moved message to DLQ", "group", c.cfg.Group, "id", t.msg.EntryID, "dlq", dlq)
	c.nDLQ.Add(1)
	if c.cfg.Observer != nil {
		c.cfg.Observer.DeadLettered(t.lane, dlq)
	}
	c.onDeadLetter(t, dlq)
	c.ack(t)
}
