package sqlitestore_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/laneway/laneway/lanewaystore"
	"github.com/laneway/laneway/lanewaystore/sqlitestore"
	"github.com/laneway/laneway/lanewaystore/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// open returns a store on a new file in the test's temporary directory.
func open(t *testing.T) lanewaystore.Store {
	t.Helper()
	s, err := sqlitestore.Open(t.Context(), filepath.Join(t.TempDir(), "laneway.db"))
	require.NoError(t, err)
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Exercise(t, open)
}

// An in-memory database must pass too: it runs on one connection.
func TestConformanceInMemory(t *testing.T) {
	t.Parallel()
	storetest.Exercise(t, func(t *testing.T) lanewaystore.Store {
		s, err := sqlitestore.Open(t.Context(), ":memory:")
		require.NoError(t, err)
		return s
	})
}
