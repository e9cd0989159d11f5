package pgstore

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaystore/storetest"
)

func TestUpgradeFromVersion1(t *testing.T) {
	t.Parallel()
	s, err := Open(t.Context(), testsvc.PostgresURL(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	storetest.UpgradeFromVersion1(t, s, func(ctx context.Context) error { return s.migrateTo(ctx, 1) })
}
