package instance

import (
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestID(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	host := regexp.QuoteMeta(Host())
	assert.Regexp(t, "^relay-"+host+"-"+pid+"-[0-9a-f]{6}$", ID("relay"))
	assert.Regexp(t, "^"+host+"-"+pid+"-[0-9a-f]{6}$", ID(""))
	assert.NotEqual(t, ID("x"), ID("x"), "two starts of one process differ")
}
