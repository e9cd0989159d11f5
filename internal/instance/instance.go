// Package instance names the running parts of an engine process: relays,
// consumers and heartbeats all carry "<prefix>-<hostname>-<pid>-<6 hex>", so
// an operator reading locked_by, XINFO CONSUMERS or a heartbeat key can
// tell which process (and which start of it) holds the work.
package instance

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
)

// Host is the host name, or "unknown" when the system does not tell.
func Host() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		return "unknown"
	}
	return host
}

// ID returns "<prefix>-<hostname>-<pid>-<6 hex>", or
// "<hostname>-<pid>-<6 hex>" when prefix is empty. The random part tells
// two starts of one process apart.
func ID(prefix string) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	id := fmt.Sprintf("%s-%d-%s", Host(), os.Getpid(), hex.EncodeToString(b))
	if prefix == "" {
		return id
	}
	return prefix + "-" + id
}
