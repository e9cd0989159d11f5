package sqlitestore

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/lanewaystore/storetest"
)

func TestUpgradeFromVersion1(t *testing.T) {
	t.Parallel()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "v1.sqlite"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	storetest.UpgradeFromVersion1(t, s, func(ctx context.Context) error { return s.migrateTo(ctx, 1) })
}
