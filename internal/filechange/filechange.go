// Package filechange tells when named files of one directory are written,
// so that a process can react to another process's writes without polling.
// It is a wake-up, never a record: changes are coalesced, a burst of
// writes gives one or a few signals, and a caller must still find what
// changed by itself (and should still look now and then, since a signal
// can be dropped when the kernel's event queue overflows: that overflow
// is itself signalled).
//
// On Linux it uses inotify; elsewhere Watch returns ErrUnsupported and the
// caller keeps its poll.
package filechange

import (
	"errors"
	"sync"
)

// ErrUnsupported is returned by Watch where the platform has no watch.
var ErrUnsupported = errors.New("filechange: not supported on this platform")

// Watcher signals writes to the files it watches.
type Watcher struct {
	changes chan struct{}
	close   func() error // stops the reader and waits for it
	once    sync.Once
	err     error
}

// Changes receives after one or more writes to a watched file. It holds at
// most one pending signal: writes while one is pending add nothing. It is
// closed if the watch fails (the kernel stops answering): the caller then
// has to poll.
func (w *Watcher) Changes() <-chan struct{} { return w.changes }

// Close stops the watch and waits for its goroutine. Changes is not closed
// by Close: a caller selecting on it also selects on its own context.
func (w *Watcher) Close() error {
	w.once.Do(func() { w.err = w.close() })
	return w.err
}

// signal records a change without blocking.
func (w *Watcher) signal() {
	select {
	case w.changes <- struct{}{}:
	default:
	}
}
