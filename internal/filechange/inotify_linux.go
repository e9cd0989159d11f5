package filechange

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"
)

// watchMask: a file written, created, or moved into the directory (a file
// replaced by rename). Metadata and reads are not watched.
const watchMask = syscall.IN_MODIFY | syscall.IN_CREATE | syscall.IN_MOVED_TO

// Watch starts watching the files called names in dir: writes to them,
// and their creation there. Other files of dir are read past and ignored.
// The watch is on the directory, not the files, so a file deleted and
// made again is still watched.
func Watch(dir string, names ...string) (*Watcher, error) {
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("filechange: inotify: %w", err)
	}
	if _, err := syscall.InotifyAddWatch(fd, dir, watchMask); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("filechange: watch %s: %w", dir, err)
	}
	// A non-blocking descriptor goes to Go's poller: Read parks the
	// goroutine instead of a thread, and Close wakes it.
	f := os.NewFile(uintptr(fd), "inotify:"+dir)
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	w := &Watcher{changes: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.read(f.Read, want)
	}()
	w.close = func() error {
		err := f.Close()
		<-done
		return err
	}
	return w, nil
}

// read signals every batch of events that matches want, until read fails.
// Close makes it fail with os.ErrClosed; any other failure closes Changes,
// which tells the caller to poll from then on.
func (w *Watcher) read(read func([]byte) (int, error), want map[string]bool) {
	buf := make([]byte, 64*(syscall.SizeofInotifyEvent+syscall.NAME_MAX+1))
	for {
		n, err := read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				close(w.changes)
			}
			return
		}
		if matches(buf[:n], want) {
			w.signal()
		}
	}
}

// matches reports whether the inotify events in buf name a file of want, or
// say that events were lost (the queue overflowed). An event is a struct
// inotify_event in the machine's byte order (wd, mask, cookie, len: four
// 32-bit words) followed by len bytes of name, padded with NULs.
func matches(buf []byte, want map[string]bool) bool {
	for len(buf) >= syscall.SizeofInotifyEvent {
		mask := binary.NativeEndian.Uint32(buf[4:8])
		end := syscall.SizeofInotifyEvent + int(binary.NativeEndian.Uint32(buf[12:16]))
		if end > len(buf) {
			return true // cannot happen with whole reads; look rather than miss
		}
		if mask&syscall.IN_Q_OVERFLOW != 0 {
			return true
		}
		name := buf[syscall.SizeofInotifyEvent:end]
		for i, b := range name {
			if b == 0 {
				name = name[:i]
				break
			}
		}
		if want[string(name)] {
			return true
		}
		buf = buf[end:]
	}
	return false
}
