package lanewayconfig_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/laneway/laneway/lanewayconfig"
)

func TestClusterURLAndPartitions(t *testing.T) {
	t.Parallel()
	c, err := lanewayconfig.Parse([]byte(`
[brokers.default]
provider = "redis"
url = "redis+cluster://u:pw@127.0.0.1:7000,127.0.0.1:7001"
[server]
partitions = 4
[server.category_partitions]
customer = 8
`), lanewayconfig.LoadOptions{})
	require.NoError(t, err)
	assert.True(t, c.ClusterBroker())
	assert.Equal(t, 4, c.Server.Partitions)
	assert.Equal(t, map[string]int{"customer": 8}, c.Server.CategoryPartitions)
	assert.NotEqual(t, lanewayconfig.Default().LanesFingerprint(), c.LanesFingerprint(), "partitions rename streams")
	assert.False(t, lanewayconfig.Default().ClusterBroker())

	_, err = lanewayconfig.Parse([]byte(`
[brokers.default]
provider = "redis"
url = "redis+cluster://u:secret@127.0.0.1:7000,127.0.0.1/3"
[server]
partitions = 0
[server.category_partitions]
customer = 5000
`), lanewayconfig.LoadOptions{})
	require.Error(t, err)
	msg := err.Error()
	for _, want := range []string{"brokers.default.url", "only database 0", "server.partitions", "server.category_partitions.customer", "between 1 and 1024"} {
		assert.Contains(t, msg, want)
	}
	assert.NotContains(t, msg, "secret")

	_, err = lanewayconfig.Parse([]byte("[brokers.default]\nprovider = \"redis\"\nurl = \"redis+cluster://127.0.0.1\"\n"), lanewayconfig.LoadOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "expected host:port")
}
