// Command laneway runs and operates Laneway services. This binary has the
// example domain examples/customers compiled in; applications build their
// own with cli.Main.
package main

import (
	"github.com/laneway/laneway/cli"
)

func main() {
	cli.Main(customersDomain)
}
