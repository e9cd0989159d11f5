package backend_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/backend"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewayconfig"
)

// Connection errors name where they failed, never the password, for every
// URL form: unreachable, wrong password, Sentinel (both passwords), and
// PostgreSQL.
func TestSecretsNotInErrors(t *testing.T) {
	t.Parallel()
	const pw, spw = "pw-S3cret-x", "sentinel-S3cret-y"
	srv := testsvc.StartRedis(t, "--requirepass", "the-right-one")
	closed := testsvc.RefusedAddr(t) // stays refused while the packages run alongside
	for name, br := range map[string]lanewayconfig.Broker{
		"unreachable":        {Provider: "redis", URL: "redis://u:" + pw + "@" + closed + "/0"},
		"wrong password":     {Provider: "redis", URL: "redis://:" + pw + "@" + srv.Addr() + "/0"},
		"sentinel":           {Provider: "redis", URL: "redis+sentinel://u:" + pw + "@" + closed + "/mymaster/0?sentinel_password=" + spw},
		"invalid URL":        {Provider: "redis", URL: "redis://u:" + pw + "@host:port:x/0"},
		"escaped password":   {Provider: "redis", URL: "redis://u:" + pw + "%21@" + closed + "/0"},
		"rediss unreachable": {Provider: "redis", URL: "rediss://u:" + pw + "@" + closed + "/0"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := backend.OpenBroker(t.Context(), br)
			require.Error(t, err)
			t.Log(err)
			assert.NotContains(t, err.Error(), pw)
			assert.NotContains(t, err.Error(), spw)
			assert.Contains(t, err.Error(), `broker "default"`)
			if name == "wrong password" {
				assert.Contains(t, err.Error(), "check the user and password")
			}
		})
	}
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		_, err := backend.OpenStore(t.Context(), lanewayconfig.Database{Provider: "postgres",
			URL: "postgres://u:" + pw + "@" + closed + "/db?sslmode=disable&connect_timeout=2"})
		require.Error(t, err)
		t.Log(err)
		assert.NotContains(t, err.Error(), pw)
	})
}
