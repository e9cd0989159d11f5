package cli

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/laneway/laneway/internal/tools/term"
)

// confirm guards a destructive command. With yes it returns nil at once.
// Otherwise it asks question on stderr when stdin is a terminal and goes on
// only on "y" or "yes". When stdin is not a terminal (a script, a pipe, CI)
// it refuses without reading anything, because nobody is there to answer:
// the command must then be run with --yes. Every refusal is an exit-1 error
// and the caller has changed nothing yet.
func (g *globals) confirm(yes bool, action, question string) error {
	if yes {
		return nil
	}
	if !readsTerminal(g.stdin) {
		return exitError{code: 1, msg: fmt.Sprintf("refusing to %s without confirmation: stdin is not a terminal; pass --yes to confirm (nothing was changed)", action)}
	}
	fmt.Fprintf(g.stderr, "%s [y/N] ", question)
	line, err := bufio.NewReader(g.stdin).ReadString('\n')
	if err != nil && line == "" {
		fmt.Fprintln(g.stderr)
		return exitError{code: 1, msg: fmt.Sprintf("refusing to %s: no answer; pass --yes to confirm (nothing was changed)", action)}
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return exitError{code: 1, msg: fmt.Sprintf("aborted: did not %s (nothing was changed)", action)}
}

// readsTerminal reports whether r is a character device such as a
// terminal (term.IsTerminal tests the file). /dev/null is one too;
// reading it gives no answer, which confirm treats as a refusal.
func readsTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && f != nil && term.IsTerminal(f)
}
