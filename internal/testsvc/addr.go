package testsvc

import (
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

// RefusedAddr is a loopback address where connections are refused for the
// rest of the test: its port is bound, so no other process can take it,
// and not listening. A port freed by closing a listener is no such address:
// packages' tests run in parallel, and another one's server may bind it
// before the test dials it.
func RefusedAddr(t testing.TB) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatalf("testsvc: socket: %v", err)
	}
	t.Cleanup(func() { _ = unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("testsvc: bind a loopback port: %v", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatalf("testsvc: getsockname: %v", err)
	}
	in, ok := sa.(*unix.SockaddrInet4)
	if !ok {
		t.Fatalf("testsvc: getsockname gave %T", sa)
	}
	return fmt.Sprintf("127.0.0.1:%d", in.Port)
}
