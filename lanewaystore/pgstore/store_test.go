package pgstore_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaystore"
	"github.com/laneway/laneway/lanewaystore/pgstore"
	"github.com/laneway/laneway/lanewaystore/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// open returns a store on a fresh schema, dropped when the test ends.
func open(t *testing.T) lanewaystore.Store {
	t.Helper()
	s, err := pgstore.Open(t.Context(), testsvc.PostgresURL(t))
	require.NoError(t, err)
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Exercise(t, open)
}
