package cli

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// openPTY opens a pseudo-terminal pair with plain syscalls (no new
// dependency): what the user types is written to master, and tty is the
// terminal the command reads.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	var unlock int32
	_, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock)))
	require.Zero(t, e, "unlock pty")
	var n uint32
	_, _, e = syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n)))
	require.Zero(t, e, "pty number")
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return m, s
}

func TestConfirmOnATerminal(t *testing.T) {
	for answer, ok := range map[string]bool{"y": true, "YES": true, "n": false, "": false, "maybe": false} {
		t.Run(answer, func(t *testing.T) {
			master, tty := openPTY(t)
			var stderr bytes.Buffer
			g := &globals{stdin: tty, stderr: &stderr}
			_, err := master.WriteString(answer + "\n")
			require.NoError(t, err)
			err = g.confirm(false, "purge customer:dlq", "Delete all 3 entries of customer:dlq?")
			assert.Equal(t, "Delete all 3 entries of customer:dlq? [y/N] ", stderr.String())
			if ok {
				assert.NoError(t, err)
				return
			}
			var ex exitError
			require.True(t, errors.As(err, &ex), "%v", err)
			assert.Equal(t, 1, ex.code)
			assert.Equal(t, "aborted: did not purge customer:dlq (nothing was changed)", ex.msg)
		})
	}
}

func TestConfirmWithoutATerminal(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	_, _ = w.WriteString("y\n") // a piped "y" is not somebody answering
	w.Close()
	for name, in := range map[string]io.Reader{"pipe": r, "reader": strings.NewReader("y\n")} {
		var stderr bytes.Buffer
		g := &globals{stdin: in, stderr: &stderr}
		err := g.confirm(false, "purge customer:dlq", "Delete?")
		var ex exitError
		require.True(t, errors.As(err, &ex), name)
		assert.Equal(t, 1, ex.code)
		assert.Contains(t, ex.msg, "stdin is not a terminal; pass --yes", name)
		assert.Empty(t, stderr.String(), "%s: no prompt nobody can answer", name)
	}
	g := &globals{stdin: r}
	assert.NoError(t, g.confirm(true, "purge customer:dlq", "Delete?"), "--yes needs no terminal")

	devnull, err := os.Open(os.DevNull) // a character device, but nobody types
	require.NoError(t, err)
	defer devnull.Close()
	var stderr bytes.Buffer
	g = &globals{stdin: devnull, stderr: &stderr}
	err = g.confirm(false, "purge customer:dlq", "Delete?")
	var ex exitError
	require.True(t, errors.As(err, &ex))
	assert.Contains(t, ex.msg, "no answer; pass --yes")
}
