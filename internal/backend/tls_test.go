package backend_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/backend"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewaybroker"
	"github.com/laneway/laneway/lanewayconfig"
)

// tlsRedis starts a TLS-only redis-server (no plain port) with the test's
// certificates; clientAuth makes it require a client certificate.
func tlsRedis(t *testing.T, certs testsvc.Certs, clientAuth bool) *testsvc.RedisServer {
	t.Helper()
	auth := "no"
	if clientAuth {
		auth = "yes"
	}
	return testsvc.StartRedis(t, "--port", "0", "--tls-port", strconv.Itoa(testsvc.FreePort(t)),
		"--tls-cert-file", certs.ServerCert, "--tls-key-file", certs.ServerKey,
		"--tls-ca-cert-file", certs.CAFile, "--tls-auth-clients", auth)
}

func brokerConfig(t *testing.T, body string) lanewayconfig.Broker {
	t.Helper()
	cfg, err := lanewayconfig.Parse([]byte(body), lanewayconfig.LoadOptions{})
	require.NoError(t, err)
	return cfg.Brokers["default"]
}

func TestTLSBroker(t *testing.T) {
	t.Parallel()
	certs := testsvc.NewCerts(t)
	srv := tlsRedis(t, certs, true)
	mtls := func(ca string) string {
		return fmt.Sprintf("[brokers.default]\nprovider = \"redis\"\nurl = \"rediss://%s/0\"\ntls_ca_file = %q\ntls_cert_file = %q\ntls_key_file = %q\n",
			srv.Addr(), ca, certs.ClientCert, certs.ClientKey)
	}

	t.Run("mutual TLS works", func(t *testing.T) {
		b, err := backend.OpenBroker(t.Context(), brokerConfig(t, mtls(certs.CAFile)))
		require.NoError(t, err)
		defer b.Close()
		_, err = b.Publish(t.Context(), []lanewaybroker.Publication{{Stream: "tls_stream", Data: "x"}})
		require.NoError(t, err)
		n, err := b.Len(t.Context(), "tls_stream")
		require.NoError(t, err)
		assert.EqualValues(t, 1, n)
	})

	t.Run("server name differs from the host", func(t *testing.T) {
		body := strings.Replace(mtls(certs.CAFile), "127.0.0.1", "localhost", 1) + "tls_server_name = \"127.0.0.1\"\n"
		b, err := backend.OpenBroker(t.Context(), brokerConfig(t, body))
		require.NoError(t, err)
		require.NoError(t, b.Close())
		body = mtls(certs.CAFile) + "tls_server_name = \"redis.example\"\n"
		_, err = backend.OpenBroker(t.Context(), brokerConfig(t, body))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "certificate")
		assert.Contains(t, err.Error(), "tls_server_name")
	})

	t.Run("wrong CA", func(t *testing.T) {
		_, err := backend.OpenBroker(t.Context(), brokerConfig(t, mtls(certs.OtherCAFile)))
		require.Error(t, err)
		msg := err.Error()
		t.Log(msg)
		assert.Contains(t, msg, `broker "default"`)
		assert.Contains(t, msg, "certificate")
		assert.Contains(t, msg, "tls_ca_file")
		assert.NotContains(t, msg, "\n")
	})

	t.Run("client certificate required and missing", func(t *testing.T) {
		body := fmt.Sprintf("[brokers.default]\nprovider = \"redis\"\nurl = \"rediss://%s/0\"\ntls_ca_file = %q\n", srv.Addr(), certs.CAFile)
		_, err := backend.OpenBroker(t.Context(), brokerConfig(t, body))
		require.Error(t, err)
		msg := err.Error()
		t.Log(msg)
		assert.Contains(t, msg, `broker "default"`)
		assert.Contains(t, msg, "client certificate")
		assert.Contains(t, msg, "tls_cert_file")
		assert.NotContains(t, msg, "\n")
	})

	t.Run("plain redis:// to a TLS port", func(t *testing.T) {
		body := fmt.Sprintf("[brokers.default]\nprovider = \"redis\"\nurl = \"redis://%s/0\"\n", srv.Addr())
		_, err := backend.OpenBroker(t.Context(), brokerConfig(t, body))
		require.Error(t, err)
		assert.Contains(t, err.Error(), `broker "default"`)
	})
}
