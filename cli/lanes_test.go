package cli_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/cli"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/internal/tools/syncio"
)

// opsRedisDB is the Redis database these read-only tests point the
// customers domain at; they only read it.
const opsRedisDB = 4

// TestLanesWatchStopsOnCancel: without --count, watch refreshes until its
// context ends (SIGINT in cli.Main), then exits 0.
func TestLanesWatchStopsOnCancel(t *testing.T) {
	t.Setenv("LANEWAY_ENV", "")
	u, err := url.Parse(testsvc.RedisURL(t))
	require.NoError(t, err)
	u.Path = fmt.Sprintf("/%d", opsRedisDB)
	dir := writeDomain(t, fmt.Sprintf("name = \"Customers\"\n[brokers.default]\nprovider = \"redis\"\nurl = %q\n", u.String()))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncio.Buffer
	done := make(chan int)
	go func() {
		done <- cli.Run(ctx, factory, []string{"lanes", "watch", "--interval", "20ms", "--domain", dir}, &out, &errb)
	}()
	require.Eventually(t, func() bool { return strings.Count(out.String(), "stream=customer ") >= 2 }, 30*time.Second, 10*time.Millisecond)
	cancel()
	select {
	case code := <-done:
		require.Equal(t, 0, code, errb.String())
	case <-time.After(30 * time.Second):
		t.Fatal("watch did not stop after its context was cancelled")
	}
	require.Empty(t, errb.String())
}
