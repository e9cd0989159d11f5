package filechange

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// signalWithin fails the test unless w signals within a generous bound (a
// hang guard, not a measure of speed).
func signalWithin(t *testing.T, w *Watcher) {
	t.Helper()
	select {
	case <-w.Changes():
	case <-time.After(30 * time.Second):
		t.Fatal("no change signalled")
	}
}

func TestWatchSignalsCreateAndWritesOfNamedFile(t *testing.T) {
	dir := t.TempDir()
	w, err := Watch(dir, "app.db-wal")
	require.NoError(t, err)
	defer func() { require.NoError(t, w.Close()) }()

	wal := filepath.Join(dir, "app.db-wal")
	require.NoError(t, os.WriteFile(wal, []byte("frame 1"), 0o600))
	signalWithin(t, w)

	f, err := os.OpenFile(wal, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	defer f.Close()
	for range 3 {
		// Each write after the signal was taken is signalled again.
		_, err = f.WriteString("frame")
		require.NoError(t, err)
		signalWithin(t, w)
	}
}

func TestCloseEndsTheWatchAndIsIdempotent(t *testing.T) {
	w, err := Watch(t.TempDir(), "x")
	require.NoError(t, err)
	require.NoError(t, w.Close())
	require.NoError(t, w.Close()) // goleak (TestMain) checks the reader ended
}

func TestWatchMissingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	_, err := Watch(dir, "x")
	require.Error(t, err)
	assert.Contains(t, err.Error(), dir)
}

// event encodes one inotify event as the kernel writes it: the name padded
// with NULs to a multiple of the header's size.
func event(mask uint32, name string) []byte {
	n := 0
	if name != "" {
		n = (len(name)/syscall.SizeofInotifyEvent + 1) * syscall.SizeofInotifyEvent
	}
	b := make([]byte, syscall.SizeofInotifyEvent+n)
	binary.NativeEndian.PutUint32(b[0:4], 1)
	binary.NativeEndian.PutUint32(b[4:8], mask)
	binary.NativeEndian.PutUint32(b[12:16], uint32(n))
	copy(b[syscall.SizeofInotifyEvent:], name)
	return b
}

func TestMatches(t *testing.T) {
	want := map[string]bool{"app.db-wal": true}
	join := func(evs ...[]byte) []byte {
		var b []byte
		for _, e := range evs {
			b = append(b, e...)
		}
		return b
	}
	cases := []struct {
		name string
		buf  []byte
		hit  bool
	}{
		{"another file", event(syscall.IN_MODIFY, "app.db"), false},
		{"a name that only starts alike", event(syscall.IN_MODIFY, "app.db-wal.bak"), false},
		{"several others", join(event(syscall.IN_MODIFY, "app.db"), event(syscall.IN_CREATE, "app.db-shm")), false},
		{"the file", event(syscall.IN_MODIFY, "app.db-wal"), true},
		{"the file after others", join(event(syscall.IN_MODIFY, "app.db"), event(syscall.IN_MODIFY, "app.db-wal")), true},
		{"a name of exactly 16 bytes", event(syscall.IN_MODIFY, "0123456789abcdef"), false},
		{"lost events", event(syscall.IN_Q_OVERFLOW, ""), true},
		{"a cut-off event", event(syscall.IN_MODIFY, "app.db")[:20], true},
		{"nothing", nil, false},
	}
	for _, c := range cases {
		assert.Equal(t, c.hit, matches(c.buf, want), c.name)
	}
}

// A watch whose descriptor fails for another reason than Close closes
// Changes, so the caller knows to poll; one ended by Close does not.
func TestFailedWatchClosesChanges(t *testing.T) {
	want := map[string]bool{"app.db-wal": true}
	reads := [][]byte{event(syscall.IN_MODIFY, "app.db-wal")}
	failing := func(err error) func([]byte) (int, error) {
		i := 0
		return func(b []byte) (int, error) {
			if i < len(reads) {
				i++
				return copy(b, reads[i-1]), nil
			}
			return 0, err
		}
	}

	w := &Watcher{changes: make(chan struct{}, 1)}
	w.read(failing(syscall.EBADF), want)
	_, open := <-w.Changes()
	assert.True(t, open, "the event before the failure")
	select {
	case _, open = <-w.Changes():
		assert.False(t, open, "closed after the failure")
	default:
		t.Fatal("Changes still open after the watch failed")
	}

	w = &Watcher{changes: make(chan struct{}, 1)}
	w.read(failing(os.ErrClosed), want)
	_, open = <-w.Changes()
	assert.True(t, open)
	select {
	case _, open = <-w.Changes():
		t.Fatalf("Changes received again (open %v) after Close", open)
	default:
	}
}
