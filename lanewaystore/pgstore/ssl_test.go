package pgstore_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaystore"
	"github.com/laneway/laneway/lanewaystore/pgstore"
	"github.com/laneway/laneway/lanewaystore/storetest"
)

// The store works over SSL with sslmode=verify-full: the whole store suite
// runs against a PostgreSQL that accepts only SSL over TCP, and each
// connection is encrypted. A root certificate that did not sign the
// server's is refused with a message about the certificate.
func TestVerifyFullSSL(t *testing.T) {
	t.Parallel()
	certs := testsvc.NewCerts(t)
	base := testsvc.StartPostgresSSL(t, certs)

	st, err := pgstore.Open(t.Context(), base)
	require.NoError(t, err)
	var ssl bool
	require.NoError(t, st.InTx(t.Context(), func(ctx context.Context, tx lanewaystore.Tx) error {
		return tx.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl)
	}))
	assert.True(t, ssl, "the connection is encrypted")
	require.NoError(t, st.Close())

	_, err = pgstore.Open(t.Context(), strings.Replace(base, certs.CAFile, certs.OtherCAFile, 1))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "certificate")

	_, err = pgstore.Open(t.Context(), strings.Replace(base, "sslmode=verify-full", "sslmode=disable", 1))
	require.Error(t, err, "plain TCP is refused: the test server really requires SSL")

	storetest.Exercise(t, func(t *testing.T) lanewaystore.Store {
		st, err := pgstore.Open(context.Background(), testsvc.SchemaURL(t, base))
		require.NoError(t, err)
		return st
	})
}
