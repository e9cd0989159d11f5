package testsvc

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
)

// StartPostgresSSL runs a throwaway PostgreSQL (initdb and pg_ctl from the
// local installation) on a free loopback port with ssl = on, serving
// certs' server certificate and accepting only SSL connections over TCP.
// It returns the URL of its postgres database with sslmode=verify-full and
// sslrootcert = certs.CAFile. The server stops when the test ends. As
// root, the server runs as the postgres user (initdb refuses root).
func StartPostgresSSL(t testing.TB, certs Certs) string {
	t.Helper()
	initdb, pgctl := pgBin(t, "initdb"), pgBin(t, "pg_ctl")
	dir, err := os.MkdirTemp("", "laneway-pgssl-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("testsvc: running as root, PostgreSQL needs the postgres user: %v (apt-get install -y postgresql creates it)", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		if err := os.Chown(data, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		if uid >= 0 {
			cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("testsvc: %s %v: %v\n%s", name, args, err, out)
		}
	}
	run(initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
	// The server reads its key only when the key belongs to it and is
	// private; TCP connections must use SSL.
	for src, dst := range map[string]string{certs.ServerCert: "server.crt", certs.ServerKey: "server.key"} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(data, dst)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if uid >= 0 {
			if err := os.Chown(path, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	hba := "local all all trust\nhostssl all all 127.0.0.1/32 trust\n"
	if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(hba), 0o644); err != nil {
		t.Fatal(err)
	}
	port := FreePort(t)
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key", port, data)
	run(pgctl, "-D", data, "-l", filepath.Join(data, "server.log"), "-w", "-o", opts, "start")
	t.Cleanup(func() {
		cmd := exec.Command(pgctl, "-D", data, "-m", "immediate", "stop")
		if uid >= 0 {
			cmd = exec.Command("runuser", "-u", "postgres", "--", pgctl, "-D", data, "-m", "immediate", "stop")
		}
		_ = cmd.Run()
	})
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=verify-full&sslrootcert=%s", port, certs.CAFile)
}

// pgBin finds a PostgreSQL server program: on PATH, else the newest
// /usr/lib/postgresql/*/bin.
func pgBin(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("testsvc: %s is not installed: apt-get install -y postgresql", name)
	return ""
}
