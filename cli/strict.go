package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// strict makes every command of the tree refuse what it does not know, so
// a typo in a script or a runbook fails loudly instead of printing help
// and exiting 0 (cobra's default for a command group given an unknown
// subcommand, and for a command without an Args rule given arguments):
//
//   - a command group (root included) given an unknown subcommand fails
//     with one line naming it and, when one is close, the likely one;
//   - a command given more positional arguments than it takes fails with
//     one line naming the first one too many.
//
// A group given nothing prints its help, as before.
func strict(c *cobra.Command) {
	if !c.HasParent() {
		c.SetFlagErrorFunc(flagError) // inherited by every command
	}
	if c.HasSubCommands() {
		c.Args = cobra.ArbitraryArgs     // the arguments reach RunE, which names them
		c.SuggestionsMinimumDistance = 2 // cobra's default, applied only on its own path
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			return unknownSubcommand(cmd, args[0])
		}
	} else {
		rule := c.Args
		if rule == nil {
			rule = noArgs
		}
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := rule(cmd, args); err != nil {
				if strings.HasPrefix(err.Error(), "unknown command ") { // cobra.NoArgs
					return noArgs(cmd, args)
				}
				return err
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		strict(sub)
	}
}

// flagError keeps a flag meant for a mistyped subcommand ("dlq replay-al
// --stream S") from hiding the typo behind "unknown flag: --stream": the
// positional arguments parsed before the flag name the subcommand.
func flagError(cmd *cobra.Command, err error) error {
	if args := cmd.Flags().Args(); cmd.HasSubCommands() && len(args) > 0 {
		return unknownSubcommand(cmd, args[0])
	}
	return err
}

func unknownSubcommand(cmd *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q for %q", name, cmd.CommandPath())
	if s := cmd.SuggestionsFor(name); len(s) > 0 {
		msg += fmt.Sprintf("; did you mean %q?", s[0])
	}
	return fmt.Errorf("%s (see %s --help)", msg, cmd.CommandPath())
}

// noArgs is the rule of a command that takes no positional argument.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%s takes no arguments; got %q (see %s --help)", cmd.CommandPath(), args[0], cmd.CommandPath())
	}
	return nil
}

// atMostArgs is the rule of a command taking an optional argument.
func atMostArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return fmt.Errorf("%s takes at most %d argument (%s); %q is one too many", cmd.CommandPath(), n, what, args[n])
		}
		return nil
	}
}
