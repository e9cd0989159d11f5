package cli_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/cli"
)

// TestEveryCommandRejectsWhatItDoesNotKnow walks the whole command tree:
// every group refuses an unknown subcommand (naming it, and the close one
// for a typo), and every command refuses positional arguments beyond
// those it takes, each with exit 1 and one line on stderr. Nothing reaches a
// service: arguments are checked before a command runs.
func TestEveryCommandRejectsWhatItDoesNotKnow(t *testing.T) {
	dir := t.TempDir() // no domain.toml: a command that did run would fail on it, loudly
	exec := func(t *testing.T, args ...string) (int, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := cli.Run(context.Background(), factory, append([]string{"--domain", dir}, args...), &out, &errb, programCommands)
		return code, errb.String()
	}
	oneLine := func(t *testing.T, stderr string) string {
		t.Helper()
		line := strings.TrimSuffix(stderr, "\n")
		require.NotEmpty(t, line)
		require.NotContains(t, line, "\n", "one line")
		require.True(t, strings.HasPrefix(line, "laneway: "), line)
		return line
	}
	groups, leaves := 0, 0
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		name := strings.Join(append([]string{"laneway"}, path...), " ")
		if c.HasSubCommands() {
			groups++
			t.Run(name+" bogus", func(t *testing.T) {
				code, stderr := exec(t, append(path, "bogus")...)
				require.Equal(t, 1, code)
				line := oneLine(t, stderr)
				require.Contains(t, line, `unknown command "bogus" for "`+name+`"`)
				require.NotContains(t, line, "did you mean", "nothing is close to bogus")

				longest := ""
				for _, sub := range c.Commands() {
					if len(sub.Name()) > len(longest) {
						longest = sub.Name()
					}
				}
				// Two typos: two letters swapped, and the last one dropped
				// with a flag of the meant subcommand after it.
				b := []byte(longest)
				b[1], b[2] = b[2], b[1]
				for _, args := range [][]string{{string(b)}, {longest[:len(longest)-1], "--stream", "x"}} {
					code, stderr = exec(t, append(append([]string(nil), path...), args...)...)
					require.Equal(t, 1, code, args)
					require.Contains(t, oneLine(t, stderr), `unknown command "`+args[0]+`" for "`+name+`"; did you mean "`+longest+`"?`)
				}
			})
			for _, sub := range c.Commands() {
				walk(sub, append(append([]string(nil), path...), sub.Name()))
			}
			return
		}
		leaves++
		t.Run(name+" with arguments", func(t *testing.T) {
			require.NotNil(t, c.Args, "every command states the arguments it takes")
			args := []string{"bogus"}
			if c.Args(c, args) == nil { // it takes one: give it more than any takes
				args = []string{"one", "two", "three", "four"}
			}
			code, stderr := exec(t, append(path, args...)...)
			require.Equal(t, 1, code)
			line := oneLine(t, stderr)
			require.Contains(t, line, name)
			if args[0] == "bogus" {
				require.Contains(t, line, `"bogus"`, "the line names the argument")
			}
		})
	}
	walk(cli.New(factory, io.Discard, io.Discard, programCommands), nil)
	require.GreaterOrEqual(t, groups, 7, "root, config, db, dlq, lanes, outbox and the program's own group")
	require.GreaterOrEqual(t, leaves, 15)
}

// programCommands adds a group the way a program adds its own commands
// (cmd/laneway adds demo and example): the strict rules cover them too.
var programCommands = cli.WithCommands(func(cli.Env) []*cobra.Command {
	g := &cobra.Command{Use: "example", Short: "a program's own group"}
	g.AddCommand(&cobra.Command{Use: "migrate-tiers", Short: "a program's own command",
		RunE: func(*cobra.Command, []string) error { return cli.Exit(1, "must not run") }})
	return []*cobra.Command{g}
})
