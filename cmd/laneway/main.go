// Command laneway runs and operates Laneway services. This binary has the
// example domain examples/customers compiled in, with its demo and example
// jobs; applications build their own with cli.Main, which has only the
// operator commands.
package main

import (
	"github.com/spf13/cobra"

	"github.com/laneway/laneway/cli"
	"github.com/laneway/laneway/cmd/laneway/internal/demo"
	"github.com/laneway/laneway/cmd/laneway/internal/example"
)

func main() {
	cli.Main(customersDomain,
		cli.WithCommands(func(env cli.Env) []*cobra.Command {
			return []*cobra.Command{demo.Command(env), example.Command(env)}
		}))
}
