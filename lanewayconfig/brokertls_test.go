package lanewayconfig_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewayconfig"
)

func TestBrokerTLSKeys(t *testing.T) {
	t.Parallel()
	certs := testsvc.NewCerts(t)
	missing := filepath.Join(t.TempDir(), "nope.pem")
	const head = "[brokers.default]\nprovider = \"redis\"\nurl = \"rediss://127.0.0.1:6380/0\"\n"

	t.Run("valid", func(t *testing.T) {
		c := mustParse(t, head+fmt.Sprintf("tls_ca_file = %q\ntls_cert_file = %q\ntls_key_file = %q\ntls_server_name = \"localhost\"\n", certs.CAFile, certs.ClientCert, certs.ClientKey))
		tc, err := c.Brokers["default"].TLSConfig()
		require.NoError(t, err)
		assert.Equal(t, "localhost", tc.ServerName)
		assert.Len(t, tc.Certificates, 1)
		assert.NotNil(t, tc.RootCAs)
	})

	cases := []struct {
		name, doc, path, value, msg string
	}{
		{"missing CA file", head + fmt.Sprintf("tls_ca_file = %q\n", missing), "brokers.default.tls_ca_file", fmt.Sprintf("%q", missing), "does not exist"},
		{"CA file that is not PEM", head + fmt.Sprintf("tls_ca_file = %q\n", certs.ClientKey), "brokers.default.tls_ca_file", fmt.Sprintf("%q", certs.ClientKey), "holds no PEM certificate"},
		{"missing cert file", head + fmt.Sprintf("tls_cert_file = %q\ntls_key_file = %q\n", missing, certs.ClientKey), "brokers.default.tls_cert_file", fmt.Sprintf("%q", missing), "does not exist"},
		{"missing key file", head + fmt.Sprintf("tls_cert_file = %q\ntls_key_file = %q\n", certs.ClientCert, missing), "brokers.default.tls_key_file", fmt.Sprintf("%q", missing), "does not exist"},
		{"cert without key", head + fmt.Sprintf("tls_cert_file = %q\n", certs.ClientCert), "brokers.default.tls_key_file", `""`, "missing: tls_cert_file is set"},
		{"key of another cert", head + fmt.Sprintf("tls_cert_file = %q\ntls_key_file = %q\n", certs.ClientCert, certs.ServerKey), "brokers.default.tls_cert_file", fmt.Sprintf("%q", certs.ClientCert), "does not load with tls_key_file"},
		{"tls keys on redis://", "[brokers.default]\nprovider = \"redis\"\nurl = \"redis://127.0.0.1:6380/0\"\n" + fmt.Sprintf("tls_ca_file = %q\n", certs.CAFile), "brokers.default.url", `"redis://127.0.0.1:6380/0"`, "need a \"rediss://\" URL"},
		{"tls keys on embedded", "[brokers.default]\n" + fmt.Sprintf("tls_ca_file = %q\n", certs.CAFile), "brokers.default.provider", `"embedded"`, "the tls_* keys need provider = \"redis\""},
		{"replicas on embedded", "[brokers.default]\nmin_replicas_acked = 1\n", "brokers.default.min_replicas_acked", "1", "the embedded broker has no replicas"},
		{"negative replicas", "[brokers.default]\nprovider = \"redis\"\nmin_replicas_acked = -1\n", "brokers.default.min_replicas_acked", "-1", "must not be negative"},
		{"zero replica timeout", "[brokers.default]\nprovider = \"redis\"\nmin_replicas_timeout_ms = 0\n", "brokers.default.min_replicas_timeout_ms", "0", "must be at least 1"},
		{"sentinel without master", "[brokers.default]\nprovider = \"redis\"\nurl = \"redis+sentinel://127.0.0.1:26379\"\n", "brokers.default.url", `"redis+sentinel://127.0.0.1:26379"`, "no master name"},
		{"sentinel bad address", "[brokers.default]\nprovider = \"redis\"\nurl = \"redis+sentinel://127.0.0.1,h:2/m/0\"\n", "brokers.default.url", `"redis+sentinel://127.0.0.1,h:2/m/0"`, `Sentinel address "127.0.0.1": want host:port`},
		{"sentinel bad db", "[brokers.default]\nprovider = \"redis\"\nurl = \"redis+sentinel://h:1/m/x\"\n", "brokers.default.url", `"redis+sentinel://h:1/m/x"`, `database "x"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseDoc(c.doc)
			problems := problemsOf(t, err)
			require.Len(t, problems, 1, "one problem: %v", err)
			requireProblem(t, err, c.path, c.value, c.msg)
		})
	}

	t.Run("sentinel URL", func(t *testing.T) {
		c := mustParse(t, "[brokers.default]\nprovider = \"redis\"\nmin_replicas_acked = 1\nurl = \"redis+sentinel://u:s3cret@127.0.0.1:26379,127.0.0.1:26380/mymaster/2?sentinel_password=sp4ss\"\n")
		b := c.Brokers["default"]
		assert.Equal(t, 1, b.MinReplicasAcked)
		assert.Equal(t, lanewayconfig.MinReplicasTimeoutMSDefault, b.MinReplicasTimeoutMS)
		red := lanewayconfig.RedactURL(b.URL)
		assert.NotContains(t, red, "s3cret")
		assert.NotContains(t, red, "sp4ss")
	})

	t.Run("relative paths are relative to domain.toml", func(t *testing.T) {
		dir := t.TempDir()
		for _, f := range []string{certs.CAFile, certs.ClientCert, certs.ClientKey} {
			data, err := os.ReadFile(f)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o600))
		}
		doc := head + "tls_ca_file = \"ca.pem\"\ntls_cert_file = \"client.pem\"\ntls_key_file = \"client.key\"\n"
		require.NoError(t, os.WriteFile(filepath.Join(dir, "domain.toml"), []byte(doc), 0o644))
		c, err := lanewayconfig.Load(lanewayconfig.LoadOptions{Dir: dir, LookupEnv: envMap()})
		require.NoError(t, err)
		assert.Equal(t, filepath.Join(dir, "ca.pem"), c.Brokers["default"].TLSCAFile)
		assert.True(t, strings.HasPrefix(c.Brokers["default"].TLSKeyFile, dir))
	})
}
