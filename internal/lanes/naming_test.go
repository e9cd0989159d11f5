package lanes

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/lanewayconfig"
)

func namingOf(t *testing.T, scheme, domain, suffix string) Naming {
	t.Helper()
	cfg := lanewayconfig.Default()
	cfg.Server.StreamNaming = scheme
	cfg.Server.PriorityLanes.BackfillSuffix = suffix
	n, err := NamingFor(cfg, domain)
	require.NoError(t, err)
	return n
}

func TestNamingSchemes(t *testing.T) {
	t.Parallel()
	type names struct{ events, commands, backfill, commandsBackfill, dlq, backfillDLQ string }
	cases := []struct {
		name   string
		naming Naming
		want   names
	}{
		{"laneway (default)", namingOf(t, "", "Customers", "backfill"),
			names{"customer", "customer:command", "customer:backfill", "customer:command:backfill", "customer:dlq", "customer:backfill:dlq"}},
		{"laneway", namingOf(t, "laneway", "Customers", "backfill"),
			names{"customer", "customer:command", "customer:backfill", "customer:command:backfill", "customer:dlq", "customer:backfill:dlq"}},
		{"protean", namingOf(t, "protean", "Customers", "backfill"),
			names{"customers::customer", "customers::customer:command", "customers::customer:backfill", "customers::customer:command:backfill", "customers::customer:dlq", "customers::customer:backfill:dlq"}},
		{"protean, two-word domain, other suffix", namingOf(t, "protean", "Loyalty-Program", "migration"),
			names{"loyalty_program::customer", "loyalty_program::customer:command", "loyalty_program::customer:migration", "loyalty_program::customer:command:migration", "loyalty_program::customer:dlq", "loyalty_program::customer:migration:dlq"}},
	}
	for _, c := range cases {
		n := c.naming
		got := names{n.Events("customer"), n.Commands("customer"), n.Backfill(n.Events("customer")), n.Backfill(n.Commands("customer")),
			n.DLQ(n.Events("customer")), n.DLQ(n.Backfill(n.Events("customer")))}
		assert.Equal(t, c.want, got, c.name)
		// The relay maps the outbox row's logical category the same way.
		assert.Equal(t, got.events, n.Primary("customer"), c.name)
		assert.Equal(t, got.commands, n.Primary(CommandCategory("customer")), c.name)
	}
}

func TestNamingClassifyWithPrefix(t *testing.T) {
	t.Parallel()
	n := namingOf(t, "protean", "Customers", "backfill")
	cats := []string{"customer", "product"}
	for stream, want := range map[string]Source{
		"customers::customer":                 {Name: "customers::customer", Primary: "customers::customer", Category: "customer", Lane: Primary, Class: Events},
		"customers::customer:backfill":        {Name: "customers::customer:backfill", Primary: "customers::customer", Category: "customer", Lane: Backfill, Class: Events},
		"customers::product:command:backfill": {Name: "customers::product:command:backfill", Primary: "customers::product:command", Category: "product", Lane: Backfill, Class: Commands},
	} {
		got, ok := n.Classify(cats, stream)
		assert.True(t, ok, stream)
		assert.Equal(t, want, got, stream)
	}
	for _, stream := range []string{"customer", "customer:backfill", "other::customer", "customers::order"} {
		_, ok := n.Classify(cats, stream)
		assert.False(t, ok, "%s is not a stream of this domain under Protean naming", stream)
	}
	// And the reverse: Laneway naming does not claim Protean's streams.
	_, ok := namingOf(t, "laneway", "Customers", "backfill").Classify(cats, "customers::customer")
	assert.False(t, ok)
}

func TestNamingForRejects(t *testing.T) {
	t.Parallel()
	cfg := lanewayconfig.Default()
	cfg.Server.StreamNaming = "protean"
	_, err := NamingFor(cfg, "Café")
	assert.ErrorContains(t, err, `server.stream_naming = "protean": domain name "Café" is not ASCII`)
	cfg.Server.StreamNaming = "python"
	_, err = NamingFor(cfg, "Customers")
	assert.ErrorContains(t, err, `server.stream_naming = "python": use "laneway" or "protean"`)
}

func TestReadPriority(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		threshold Priority
		lane      Lane
		in, want  Priority
	}{
		{0, Backfill, 0, -1},    // Protean's backfill event
		{0, Backfill, 50, -1},   // above the threshold
		{0, Backfill, -1, -1},   // just below: kept
		{0, Backfill, Low, Low}, // Laneway's own: exact
		{0, Backfill, Bulk, Bulk},
		{0, Primary, 0, 0}, // primary is never changed
		{0, Primary, -50, -50},
		{10, Backfill, 0, 0}, // already below a higher threshold
		{10, Backfill, 10, 9},
		{-25, Backfill, -25, -26},
	} {
		got := Config{Enabled: true, Threshold: c.threshold}.ReadPriority(c.lane, c.in)
		assert.Equal(t, c.want, got, "threshold %d, %s, %d", c.threshold, c.lane, c.in)
	}
}

func TestNamingClusterAndPartitions(t *testing.T) {
	t.Parallel()
	cl := Naming{Cluster: true}
	assert.Equal(t, "{customer}", cl.Events("customer"))
	assert.Equal(t, "{customer}:backfill", cl.Backfill(cl.Events("customer")))
	assert.Equal(t, "{customer}:dlq", cl.DLQ(cl.Events("customer")))
	assert.Equal(t, "{customer}:backfill:dlq", cl.DLQ(cl.Backfill(cl.Events("customer"))))
	assert.Equal(t, "{customer:command}", cl.Commands("customer"))
	assert.Equal(t, "{customer:command}:backfill", cl.Backfill(cl.Commands("customer")))
	pr := Naming{Cluster: true, Prefix: "customers::"}
	assert.Equal(t, "{customers::customer}:backfill", pr.Backfill(pr.Events("customer")))

	// N = 1 keeps the unpartitioned names exactly.
	one := Naming{DefaultPartitions: 1}
	assert.Equal(t, []string{"customer"}, one.EventPartitions("customer"))
	assert.Equal(t, "customer", one.PrimaryFor("customer", "customer-42"))

	p := Naming{PartitionsByCategory: map[string]int{"customer": 4}}
	assert.Equal(t, []string{"customer", "customer.1", "customer.2", "customer.3"}, p.EventPartitions("customer"))
	assert.Equal(t, []string{"customer:command", "customer:command.1", "customer:command.2", "customer:command.3"}, p.CommandPartitions("customer"))
	assert.Equal(t, []string{"product"}, p.EventPartitions("product"))
	pc := Naming{Cluster: true, DefaultPartitions: 2}
	assert.Equal(t, []string{"{customer}", "{customer.1}"}, pc.EventPartitions("customer"))

	// The partition is FNV-1a-32 of the aggregate id, modulo N: fixed
	// values (checked against the published FNV-1a of "a", 0xe40c292c),
	// since every producer must agree on them.
	assert.Equal(t, 0, PartitionOf("anything", 1))
	for id, want := range map[string]int{"42": 3, "a": 0, "b": 1, "c": 2} {
		assert.Equal(t, want, PartitionOf(id, 4), id)
	}
	assert.Equal(t, p.PrimaryPartition("customer", PartitionOf("42", 4)), p.PrimaryFor("customer", "customer-42"))
	assert.Equal(t, p.PrimaryPartition("customer:command", PartitionOf("42", 4)), p.PrimaryFor("customer:command", "customer-42"))
	assert.Equal(t, "42", AggregateID("customer", "customer-42"))
	assert.Equal(t, "42", AggregateID("customer:command", "customer-42"))
	assert.Equal(t, "x-1", AggregateID("customer", "x-1"))

	cats := []string{"customer", "product"}
	for _, c := range []struct {
		n      Naming
		stream string
		want   Source
	}{
		{pc, "{customer.1}:backfill", Source{Name: "{customer.1}:backfill", Primary: "{customer.1}", Category: "customer", Partition: 1, Lane: Backfill, Class: Events}},
		{pc, "{customer}", Source{Name: "{customer}", Primary: "{customer}", Category: "customer", Lane: Primary, Class: Events}},
		{pc, "{customer:command.1}", Source{Name: "{customer:command.1}", Primary: "{customer:command.1}", Category: "customer", Partition: 1, Lane: Primary, Class: Commands}},
		{p, "customer.3", Source{Name: "customer.3", Primary: "customer.3", Category: "customer", Partition: 3, Lane: Primary, Class: Events}},
		{p, "customer:command.2:backfill", Source{Name: "customer:command.2:backfill", Primary: "customer:command.2", Category: "customer", Partition: 2, Lane: Backfill, Class: Commands}},
		{p, "customer:command:backfill", Source{Name: "customer:command:backfill", Primary: "customer:command", Category: "customer", Lane: Backfill, Class: Commands}},
	} {
		got, ok := c.n.Classify(cats, c.stream)
		require.True(t, ok, c.stream)
		assert.Equal(t, c.want, got, c.stream)
	}
	for _, bad := range []string{"customer", "customer.x", "customer.01", "{customer.1}:backfill:dlq"} {
		_, ok := pc.Classify(cats, bad)
		assert.False(t, ok, bad)
	}
}
