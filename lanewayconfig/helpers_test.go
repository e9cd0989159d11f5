package lanewayconfig_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/lanewayconfig"
)

// envMap returns a LookupEnv reading only the given KEY, VALUE pairs, so no
// test depends on the real environment.
func envMap(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func parseDoc(doc string, kv ...string) (*lanewayconfig.Config, error) {
	return lanewayconfig.Parse([]byte(doc), lanewayconfig.LoadOptions{LookupEnv: envMap(kv...)})
}

func mustParse(t *testing.T, doc string, kv ...string) *lanewayconfig.Config {
	t.Helper()
	c, err := parseDoc(doc, kv...)
	require.NoError(t, err)
	return c
}

func problemsOf(t *testing.T, err error) []lanewayconfig.Problem {
	t.Helper()
	require.Error(t, err)
	var ve *lanewayconfig.ValidationError
	require.True(t, errors.As(err, &ve), "want *ValidationError, got %T: %v", err, err)
	require.NotEmpty(t, ve.Problems)
	return ve.Problems
}

// requireProblem asserts that err reports a problem at path with exactly
// value, whose message contains msg, and that the error text shows
// "path = value" (or "path:" when there is no value) and msg.
func requireProblem(t *testing.T, err error, path, value, msg string) {
	t.Helper()
	for _, p := range problemsOf(t, err) {
		if p.Path != path {
			continue
		}
		require.Equal(t, value, p.Value, "value of the problem at %s", path)
		require.Contains(t, p.Msg, msg)
		head := path + ": "
		if value != "" {
			head = path + " = " + value + ": "
		}
		require.Contains(t, err.Error(), head+p.Msg)
		return
	}
	require.Failf(t, "problem not reported", "no problem at %q in:\n%v", path, err)
}

func paths(ps []lanewayconfig.Problem) string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Path)
	}
	return strings.Join(out, ",")
}
