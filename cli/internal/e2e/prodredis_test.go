package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/examples/customers"
	"github.com/laneway/laneway/internal/testsvc"
	"github.com/laneway/laneway/lanewayconfig"
)

// docsACLLine returns the user, password and rules of the ACL SETUSER line
// docs/operations.md gives, word for word.
func docsACLLine(t *testing.T) (user, password string, rules []string) {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "operations.md"))
	require.NoError(t, err)
	for _, line := range strings.Split(string(doc), "\n") {
		f := strings.Fields(line)
		if len(f) > 5 && f[0] == "ACL" && f[1] == "SETUSER" && f[3] == "on" && strings.HasPrefix(f[4], ">") {
			return f[2], f[4][1:], f[3:]
		}
	}
	t.Fatal("docs/operations.md gives no ACL SETUSER line")
	return "", "", nil
}

// tlsOnlyRedis starts a redis-server with no plain port, requiring client
// certificates, and returns it with an admin client (the default user)
// and the [brokers.default] TLS keys for the test's certificates.
func tlsOnlyRedis(t *testing.T, certs testsvc.Certs) (port int, admin *redis.Client, tlsKeys string) {
	t.Helper()
	port = testsvc.FreePort(t)
	testsvc.StartRedis(t, "--port", "0", "--tls-port", strconv.Itoa(port),
		"--tls-cert-file", certs.ServerCert, "--tls-key-file", certs.ServerKey,
		"--tls-ca-cert-file", certs.CAFile, "--tls-auth-clients", "yes")
	tlsKeys = fmt.Sprintf("tls_ca_file = %q\ntls_cert_file = %q\ntls_key_file = %q\n", certs.CAFile, certs.ClientCert, certs.ClientKey)
	tc, err := lanewayconfig.Broker{URL: "rediss://x", TLSCAFile: certs.CAFile, TLSCertFile: certs.ClientCert,
		TLSKeyFile: certs.ClientKey, TLSServerName: "127.0.0.1"}.TLSConfig()
	require.NoError(t, err)
	admin = redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), TLSConfig: tc})
	t.Cleanup(func() { _ = admin.Close() })
	return port, admin, tlsKeys
}

// The engine, a drain (migrate-tiers), lanes status, dlq replay and doctor
// all run against a TLS-only Redis (mutual TLS) as the least-privilege user
// created with exactly the line docs/operations.md gives: nothing is
// refused, and the password shows nowhere.
func TestTLSAndACLUser(t *testing.T) {
	ctx := context.Background()
	certs := testsvc.NewCerts(t)
	port, admin, tlsKeys := tlsOnlyRedis(t, certs)
	user, pass, rules := docsACLLine(t)
	args := []any{"ACL", "SETUSER", user}
	for _, r := range rules {
		args = append(args, r)
	}
	require.NoError(t, admin.Do(ctx, args...).Err())

	e := newEnv(t, envParams{Lanes: true, HTTP: true, Broker: &brokerParams{
		URL: fmt.Sprintf("rediss://%s:%s@127.0.0.1:%d/0", user, pass, port), Extra: tlsKeys, Admin: admin}})
	// The database URL carries a password too (trust authentication
	// ignores it), so every place below is checked for both.
	const dbPass = "pg-s3cret-pw"
	setDBPassword(t, e.dir, dbPass)
	app := e.openApp()
	require.NoError(t, customers.Migrate(ctx, app))
	fix := e.poison("c-poison")
	eng := e.startEngine()

	// Production traffic, then the guide's drain: LOW tier updates through
	// the backfill lane.
	register(t, app, 0, 50, 4)
	out := e.migrateTiers("--count", "300", "--priority", "low")
	assert.Contains(t, out, "count 300  updated 300  errors 0")
	require.NoError(t, app.Process(ctx, customers.RegisterCustomer{CustomerID: "c-poison", Name: "Poison", Email: "p@example.com"},
		laneway.AtPriority(laneway.Low)))
	require.Eventually(t, func() bool { return e.rdbLen(backfill+":dlq") == 1 && e.summaryCount() == 300 }, wait, tick)
	require.Eventually(t, func() bool {
		for _, s := range []string{stream, backfill} {
			for _, g := range e.groupInfo(s) {
				if g.Lag != 0 || g.Pending != 0 {
					return false
				}
			}
		}
		return true
	}, wait, tick, "the drain did not finish")

	var outputs []string
	code, out, errs := e.cli(nil, "lanes", "status", "--json")
	require.Equal(t, 0, code, errs)
	outputs = append(outputs, out, errs)
	var st struct {
		Engines []struct {
			ID string `json:"id"`
		} `json:"engines"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &st), out)
	assert.Len(t, st.Engines, 1, "the heartbeat is readable")

	code, out, errs = e.cli(nil, "dlq", "list", "--json")
	require.Equal(t, 0, code, errs)
	outputs = append(outputs, out, errs)
	var list dlqListJSON
	require.NoError(t, json.Unmarshal([]byte(out), &list), out)
	require.Len(t, list.Entries, 1, out)
	fix()
	code, out, errs = e.cli(nil, "dlq", "replay", list.Entries[0].ID)
	require.Equal(t, 0, code, errs)
	outputs = append(outputs, out, errs)
	require.Eventually(t, func() bool {
		return e.count(`SELECT count(*) FROM customer_summary WHERE customer_id = 'c-poison'`) == 1
	}, wait, tick)

	code, out, errs = e.cli(nil, "doctor", "--sample", "200ms")
	outputs = append(outputs, out, errs)
	require.Equal(t, 0, code, "%s\n%s", out, errs)
	assert.Regexp(t, `PASS\s+Redis permissions\s+Redis user "`+user+`" may run every command`, out)
	t.Logf("doctor:\n%s", out)

	code, out, errs = e.cli(nil, "config", "show")
	require.Equal(t, 0, code, errs)
	outputs = append(outputs, out, errs)
	assert.Contains(t, out, "rediss://"+user+":xxxxx@")

	code, out, errs = e.cli(nil, "config", "show", "--json")
	require.Equal(t, 0, code, errs)
	outputs = append(outputs, out, errs)

	// The heartbeat and the metrics.
	beats, err := admin.Keys(ctx, "laneway:engine:*").Result()
	require.NoError(t, err)
	require.Len(t, beats, 1)
	beat, err := admin.Get(ctx, beats[0]).Result()
	require.NoError(t, err)
	outputs = append(outputs, beat)
	_, metrics := testsvc.HTTPGet(t, "http://"+eng.httpAddr(t)+"/metrics")
	require.Contains(t, metrics, "laneway_")
	outputs = append(outputs, metrics)

	eng.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, eng.wait(t, wait))
	outputs = append(outputs, eng.stderr.String())
	for _, o := range outputs {
		assert.NotContains(t, o, "NOPERM")
		assert.NotContains(t, o, pass, "the password must not be shown")
		assert.NotContains(t, o, dbPass, "the password must not be shown")
	}

	// A permission taken away: doctor names it and prints the fix.
	require.NoError(t, admin.Do(ctx, "ACL", "SETUSER", user, "-xautoclaim").Err())
	code, out, _ = e.cli(nil, "doctor", "--sample", "200ms")
	require.Equal(t, 1, code, out)
	assert.Regexp(t, `FAIL\s+Redis permissions\s+Redis user "`+user+`" is refused \(NOPERM\): XAUTOCLAIM on customer:laneway-acl-probe`, out)
	assert.Contains(t, out, "fix: as a Redis admin, run: ACL SETUSER "+user+" resetkeys ~customer ~customer:* ~product ~product:* ~laneway:* resetchannels -@all ")
	assert.NotContains(t, out, pass)
	t.Logf("doctor, one permission missing:\n%s", out)

	// Refused at connection (no INFO): doctor still explains.
	require.NoError(t, admin.Do(ctx, "ACL", "SETUSER", user, "-info").Err())
	code, out, _ = e.cli(nil, "doctor", "--sample", "200ms")
	require.Equal(t, 1, code, out)
	assert.Regexp(t, `FAIL\s+Redis permissions\s+Redis user "`+user+`" may not connect: .*NOPERM`, out)
	assert.NotContains(t, out, pass)

	// The wrong CA: one line naming the broker and the certificate, from
	// the operator commands and from the engine.
	toml, err := os.ReadFile(filepath.Join(e.dir, "domain.toml"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(e.dir, "domain.toml"),
		[]byte(strings.Replace(string(toml), certs.CAFile, certs.OtherCAFile, 1)), 0o644))
	for _, cmd := range [][]string{{"lanes", "status"}, {"server"}} {
		code, _, errs = e.cli(nil, cmd...)
		requireUserError(t, code, errs, `broker "default"`, "certificate", "tls_ca_file")
		assert.NotContains(t, errs, pass)
		assert.NotContains(t, errs, dbPass)
	}
}

// setDBPassword adds a password to the PostgreSQL URL of dir's domain.toml.
func setDBPassword(t *testing.T, dir, pw string) {
	t.Helper()
	path := filepath.Join(dir, "domain.toml")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	s := strings.Replace(string(b), "postgres://postgres@", "postgres://postgres:"+pw+"@", 1)
	require.NotEqual(t, string(b), s)
	require.NoError(t, os.WriteFile(path, []byte(s), 0o644))
}
