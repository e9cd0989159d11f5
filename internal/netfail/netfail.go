// Package netfail tells a server that cannot be reached (or cannot serve
// now) from a request it rejected, by the error alone.
package netfail

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
)

// unavailableReplies are Redis error replies that mean "this server cannot
// serve now" (starting, read-only replica, failing over, busy, out of
// memory), not "this request is wrong".
var unavailableReplies = []string{"LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "NOREPLICAS", "BUSY", "OOM"}

// Unreachable reports whether err says the server could not be reached or
// did not reply in time: refused or reset connections, timeouts, a closed
// or exhausted pool, and the replies of a Redis that is loading, read-only
// or failing over.
func Unreachable(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	msg := err.Error()
	for _, s := range []string{"client is closed", "connection pool timeout", "connection refused", "connection reset", "i/o timeout", "broken pipe"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	for _, r := range unavailableReplies {
		if strings.HasPrefix(msg, r+" ") || strings.Contains(msg, ": "+r+" ") {
			return true
		}
	}
	return false
}
