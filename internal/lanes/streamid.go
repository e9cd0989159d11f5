package lanes

import (
	"fmt"
	"strconv"
	"strings"
)

// ID is a stream entry id "<milliseconds>-<sequence>".
type ID struct{ Ms, Seq uint64 }

// ParseID reads "<ms>-<seq>", "<ms>" (sequence 0) or "" (0-0).
func ParseID(s string) (ID, error) {
	if s == "" {
		return ID{}, nil
	}
	msS, seqS, found := strings.Cut(s, "-")
	ms, err := strconv.ParseUint(msS, 10, 64)
	if err != nil {
		return ID{}, fmt.Errorf("bad stream id %q", s)
	}
	var seq uint64
	if found {
		if seq, err = strconv.ParseUint(seqS, 10, 64); err != nil {
			return ID{}, fmt.Errorf("bad stream id %q", s)
		}
	}
	return ID{ms, seq}, nil
}

// Less orders ids as the stream does.
func (a ID) Less(b ID) bool { return a.Ms < b.Ms || (a.Ms == b.Ms && a.Seq < b.Seq) }

// Compare returns -1, 0 or 1 as a is below, equal to or above b.
func (a ID) Compare(b ID) int {
	switch {
	case a.Less(b):
		return -1
	case b.Less(a):
		return 1
	}
	return 0
}

// Next is the smallest id above a.
func (a ID) Next() ID {
	if a.Seq == ^uint64(0) {
		return ID{a.Ms + 1, 0}
	}
	return ID{a.Ms, a.Seq + 1}
}

func (a ID) String() string {
	return strconv.FormatUint(a.Ms, 10) + "-" + strconv.FormatUint(a.Seq, 10)
}

// NextID is the smallest id above id, as text: an inclusive range cursor
// that skips id. Text that is not an id comes back unchanged.
func NextID(id string) string {
	v, err := ParseID(id)
	if err != nil || id == "" {
		return id
	}
	return v.Next().String()
}

// NormalizeID turns the "0" (or "") a group created at id 0 may report into "0-0".
func NormalizeID(id string) string {
	if id == "" || id == "0" {
		return "0-0"
	}
	return id
}

// CompareIDs compares two ids numerically; when either is not an id the
// two compare as text, which keeps the order total.
func CompareIDs(a, b string) int {
	x, errA := ParseID(a)
	y, errB := ParseID(b)
	if errA != nil || errB != nil {
		return strings.Compare(a, b)
	}
	return x.Compare(y)
}
