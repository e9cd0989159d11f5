package lanewayconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// TLSEnabled reports whether the broker is reached over TLS: a "rediss://"
// URL.
func (b Broker) TLSEnabled() bool { return strings.HasPrefix(b.URL, "rediss://") }

// TLSConfig builds the client TLS configuration of a "rediss://" broker
// from tls_ca_file, tls_cert_file, tls_key_file and tls_server_name; it is
// nil for other URLs. Errors name the key at fault. An empty ServerName
// means the URL's host.
func (b Broker) TLSConfig() (*tls.Config, error) {
	if !b.TLSEnabled() {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: b.TLSServerName}
	if b.TLSCAFile != "" {
		pool, err := loadCA(b.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls_ca_file: %w", err)
		}
		cfg.RootCAs = pool
	}
	if b.TLSCertFile != "" || b.TLSKeyFile != "" {
		pair, err := tls.LoadX509KeyPair(b.TLSCertFile, b.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls_cert_file %q / tls_key_file %q: %w", b.TLSCertFile, b.TLSKeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

func loadCA(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fileErr(path, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%q holds no PEM certificate", path)
	}
	return pool, nil
}

func fileErr(path string, err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("file %q does not exist", path)
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("cannot read %q: %w", path, pe.Err)
	}
	return err
}

// brokerTLS checks the TLS keys: they need a "rediss://" URL, each file
// must exist and parse, and a client certificate comes with its key.
func (v *validator) brokerTLS(path string, b Broker) {
	set := b.TLSCAFile != "" || b.TLSCertFile != "" || b.TLSKeyFile != "" || b.TLSServerName != ""
	if !set {
		return
	}
	if b.Provider != BrokerProviderRedis {
		v.add(path+".provider", b.Provider, "the tls_* keys need provider = %q (the embedded broker runs in-process, without TLS)", BrokerProviderRedis)
		return
	}
	if !b.TLSEnabled() {
		v.add(path+".url", RedactURL(b.URL), "the tls_* keys need a \"rediss://\" URL (TLS); replace \"redis://\" with \"rediss://\"")
		return
	}
	if b.TLSCAFile != "" {
		if _, err := loadCA(b.TLSCAFile); err != nil {
			v.add(path+".tls_ca_file", b.TLSCAFile, "%s: give the PEM file of the CA that signed the Redis server's certificate", err)
		}
	}
	switch {
	case b.TLSCertFile != "" && b.TLSKeyFile == "":
		v.add(path+".tls_key_file", "", "missing: tls_cert_file is set, so set tls_key_file to its private key (PEM)")
	case b.TLSCertFile == "" && b.TLSKeyFile != "":
		v.add(path+".tls_cert_file", "", "missing: tls_key_file is set, so set tls_cert_file to the client certificate (PEM)")
	case b.TLSCertFile != "":
		certOK := v.readable(path+".tls_cert_file", b.TLSCertFile, "the client certificate (PEM)")
		keyOK := v.readable(path+".tls_key_file", b.TLSKeyFile, "the client certificate's private key (PEM)")
		if certOK && keyOK {
			if _, err := tls.LoadX509KeyPair(b.TLSCertFile, b.TLSKeyFile); err != nil {
				v.add(path+".tls_cert_file", b.TLSCertFile, "does not load with tls_key_file %q: %v", b.TLSKeyFile, err)
			}
		}
	}
}

func (v *validator) readable(path, file, what string) bool {
	if _, err := os.ReadFile(file); err != nil {
		v.add(path, file, "%s: give %s", fileErr(file, err), what)
		return false
	}
	return true
}

// replicas checks min_replicas_acked and its timeout.
func (v *validator) replicas(path string, b Broker) {
	if b.MinReplicasAcked < 0 {
		v.add(path+".min_replicas_acked", b.MinReplicasAcked, "must not be negative (0 does not wait for replicas)")
	} else if b.MinReplicasAcked > 0 && b.Provider != BrokerProviderRedis {
		v.add(path+".min_replicas_acked", b.MinReplicasAcked,
			"the embedded broker has no replicas: use 0, or provider = %q with a replicated Redis", BrokerProviderRedis)
	}
	if v.atLeast(path+".min_replicas_timeout_ms", b.MinReplicasTimeoutMS, 1) {
		v.durationMS(path+".min_replicas_timeout_ms", b.MinReplicasTimeoutMS)
	}
}

// resolveFiles makes relative TLS file paths relative to the directory of
// the configuration file, so the engine finds them from any working
// directory.
func (c *Config) resolveFiles() {
	if c.source == "" {
		return
	}
	dir := filepath.Dir(c.source)
	for k, b := range c.Brokers {
		for _, p := range []*string{&b.TLSCAFile, &b.TLSCertFile, &b.TLSKeyFile} {
			if *p != "" && !filepath.IsAbs(*p) {
				*p = filepath.Join(dir, *p)
			}
		}
		c.Brokers[k] = b
	}
}
