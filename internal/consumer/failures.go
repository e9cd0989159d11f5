package consumer

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"
)

// permanentError marks a handler failure that no retry can fix.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent wraps err so the consumer moves the message to the DLQ at once
// instead of retrying it: the failure is deterministic (an upcaster that
// rejects the entry), like an undecodable entry.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

func isPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// handlerAbandonAfter is how long a handler that ignores its cancelled
// context is waited for after HandlerTimeout before its slot is freed.
const handlerAbandonAfter = time.Second

// ErrHandlerTimeout is the failure of a handler run that outlived
// Config.HandlerTimeout.
var ErrHandlerTimeout = errors.New("handler timed out")

// safeHandle runs the handler, turning a panic into an error that carries
// the panic value and the stack (it becomes the DLQ reason once the
// attempts are used up). With HandlerTimeout the run gets a context that
// is cancelled after it; a handler that still does not return within
// handlerAbandonAfter is left running on its own goroutine and its slot is
// freed, so a hung call cannot wedge the lane. Its late result is dropped.
func (c *Consumer) safeHandle(m *Message) error {
	if c.cfg.HandlerTimeout <= 0 {
		return c.callHandler(c.handlerCtx, m)
	}
	ctx, cancel := context.WithTimeout(c.handlerCtx, c.cfg.HandlerTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.callHandler(ctx, m) }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		abandon := time.NewTimer(handlerAbandonAfter)
		defer abandon.Stop()
		select {
		case err = <-done:
		case <-abandon.C:
			c.cfg.Logger.Error("handler did not return after its timeout; freeing its slot", "group", c.cfg.Group, "stream", m.Stream, "id", m.EntryID, "timeout", c.cfg.HandlerTimeout)
			err = ctx.Err()
		}
	}
	if ctx.Err() == context.DeadlineExceeded && c.handlerCtx.Err() == nil {
		return fmt.Errorf("%w after %s: %w", ErrHandlerTimeout, c.cfg.HandlerTimeout, err)
	}
	return err
}

func (c *Consumer) callHandler(ctx context.Context, m *Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panic: %v\n%s", r, debug.Stack())
		}
	}()
	return c.cfg.Handle(ctx, m)
}
