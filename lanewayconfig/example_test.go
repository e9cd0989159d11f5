package lanewayconfig_test

import (
	"fmt"

	"github.com/laneway/laneway/lanewayconfig"
)

// The seed guide's overlay: lanes off by default, on in production.
func ExampleParse() {
	doc := []byte(`
[server.priority_lanes]
enabled = false

[production.server.priority_lanes]
enabled = true
threshold = 0
`)
	for _, env := range []string{"", "production"} {
		c, err := lanewayconfig.Parse(doc, lanewayconfig.LoadOptions{
			LookupEnv: func(k string) (string, bool) {
				if k == lanewayconfig.EnvVar && env != "" {
					return env, true
				}
				return "", false
			},
		})
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("LANEWAY_ENV=%q enabled=%t\n", c.EnvName(), c.Server.PriorityLanes.Enabled)
	}
	// Output:
	// LANEWAY_ENV="" enabled=false
	// LANEWAY_ENV="production" enabled=true
}

func ExampleParse_validation() {
	_, err := lanewayconfig.Parse([]byte(`
[server.priority_lane]
enabled = true

[server.priority_lanes]
backfill_suffix = "a:b"
`), lanewayconfig.LoadOptions{LookupEnv: func(string) (string, bool) { return "", false }})
	fmt.Println(err)
	// Output:
	// invalid configuration (2 problems):
	//   server.priority_lane: unknown key; did you mean "server.priority_lanes"?
	//   server.priority_lanes.backfill_suffix = "a:b": must not contain ':' (it separates stream name parts); use e.g. "backfill"
}
