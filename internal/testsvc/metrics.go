package testsvc

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Sample is one line of the Prometheus text format.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Samples is one scrape of /metrics.
type Samples []Sample

// Get returns the value of the one sample called name whose labels include
// want; ok is false when there is none. Two matches fail the test.
func (s Samples) Get(t testing.TB, name string, want map[string]string) (float64, bool) {
	t.Helper()
	var found []Sample
next:
	for _, x := range s {
		if x.Name != name {
			continue
		}
		for k, v := range want {
			if x.Labels[k] != v {
				continue next
			}
		}
		found = append(found, x)
	}
	if len(found) > 1 {
		t.Fatalf("testsvc: %s%v matches several samples: %v", name, want, found)
	}
	if len(found) == 0 {
		return 0, false
	}
	return found[0].Value, true
}

// Must is Get that fails the test when the sample does not exist.
func (s Samples) Must(t testing.TB, name string, want map[string]string) float64 {
	t.Helper()
	v, ok := s.Get(t, name, want)
	if !ok {
		t.Fatalf("testsvc: metric %s%v is missing", name, want)
	}
	return v
}

// HTTPGet fetches url and returns the status code and body.
func HTTPGet(t testing.TB, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, http.NoBody)
	if err != nil {
		t.Fatalf("testsvc: GET %s: %v", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("testsvc: GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("testsvc: GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// Scrape reads http://addr/metrics and parses the text format (Laneway's
// label values hold no escaped quotes or commas, so a small parser does).
func Scrape(t testing.TB, addr string) Samples {
	t.Helper()
	code, body := HTTPGet(t, "http://"+addr+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("testsvc: GET /metrics: status %d: %s", code, body)
	}
	var out Samples
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if sp <= 0 || err != nil {
			t.Fatalf("testsvc: bad metrics line %q", line)
		}
		head := line[:sp]
		x := Sample{Name: head, Labels: map[string]string{}, Value: v}
		if i := strings.IndexByte(head, '{'); i >= 0 {
			x.Name = head[:i]
			for _, kv := range strings.Split(strings.TrimSuffix(head[i+1:], "}"), ",") {
				if k, val, ok := strings.Cut(kv, "="); ok {
					x.Labels[k] = strings.Trim(val, `"`)
				}
			}
		}
		out = append(out, x)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("testsvc: read metrics: %v", err)
	}
	return out
}
