package lanes

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// streamNameBuilding matches code that spells a part of a stream name or
// joins names with ':' by hand.
var streamNameBuilding = regexp.MustCompile(`":(dlq|command|backfill)\b|\+ *":" *\+|\+ *":"$`)

// notStreamNames are lines that join with ':' for another reason.
var notStreamNames = map[string]bool{
	"lanewayconfig/redact.go": true, // user:password in a URL
}

// TestNothingElseBuildsStreamNames keeps this package the only owner of
// stream names: a later naming scheme (a domain prefix, cluster hash tags)
// must not have to hunt for hand-built names. It scans the module's non-test
// sources outside this package.
func TestNothingElseBuildsStreamNames(t *testing.T) {
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(root, "go.mod"))
	require.NoError(t, err, "the module root is two levels up")
	var found []string
	scanned := 0
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") || rel == filepath.Join("internal", "lanes") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || notStreamNames[filepath.ToSlash(rel)] {
			return nil
		}
		scanned++
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if strings.HasPrefix(line, "//") {
				continue
			}
			if streamNameBuilding.MatchString(line) {
				found = append(found, filepath.ToSlash(rel)+":"+strconv.Itoa(n)+": "+line)
			}
		}
		return sc.Err()
	})
	require.NoError(t, err)
	require.Greater(t, scanned, 50, "the scan saw the module's sources")
	require.Empty(t, found, "stream names are built only by lanes.Naming")
}
