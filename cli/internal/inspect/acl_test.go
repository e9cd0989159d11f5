package inspect_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/cli/internal/inspect"
	"github.com/laneway/laneway/examples/customers"
	"github.com/laneway/laneway/lanewayconfig"
)

// DocsACLUser and DocsACLPassword are the user and password of the
// ACL SETUSER line docs/operations.md gives for the example domain.
const (
	DocsACLUser     = "laneway"
	DocsACLPassword = "change-me"
)

func customersTopology(t *testing.T, cfg *lanewayconfig.Config) inspect.Topology {
	t.Helper()
	dom, err := customers.New(customers.Options{})
	require.NoError(t, err)
	topo, err := inspect.NewTopology(dom, cfg)
	require.NoError(t, err)
	return topo
}

// The least-privilege line of docs/operations.md is the one ACLSetUser
// builds for the example domain, word for word.
func TestDocsGiveTheACLLine(t *testing.T) {
	t.Parallel()
	line := inspect.ACLSetUser(DocsACLUser, DocsACLPassword, customersTopology(t, lanewayconfig.Default()))
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "operations.md"))
	require.NoError(t, err)
	assert.True(t, strings.Contains(string(doc), "\n"+line+"\n"), "docs/operations.md must give, on a line of its own:\n%s", line)
}

func TestACLRules(t *testing.T) {
	t.Parallel()
	rules := inspect.ACLRules(customersTopology(t, lanewayconfig.Default()))
	assert.Contains(t, rules, "resetkeys ~customer ~customer:* ~product ~product:* ~laneway:* ~rate:laneway:* resetchannels -@all +ping")
	assert.NotContains(t, rules, "~customer:command", "covered by ~customer:*")

	// Under Protean naming the streams carry the domain prefix.
	cfg := lanewayconfig.Default()
	cfg.Server.StreamNaming = lanewayconfig.StreamNamingProtean
	rules = inspect.ACLRules(customersTopology(t, cfg))
	assert.Contains(t, rules, "resetkeys ~customers::customer ~customers::customer:* ~customers::product ~customers::product:* ~laneway:* ~rate:laneway:* ")
}
