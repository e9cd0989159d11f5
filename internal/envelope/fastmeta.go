package envelope

import (
	"slices"
	"strconv"
)

// The fast path's readers of the envelope's metadata (fast.go): the
// members Laneway and the reference write, read the way the general
// decoder reads them.

// fields is one metadata object's string members the fast path fills.
type fields []struct {
	key string
	dst *string
}

// members reads an object whose members named in strs are strings without
// escapes, null or absent; when prio and ver are set, "priority" and
// "version" are integer members (or null); when tp is set, "traceparent" is
// a trace context object or null. Members named in ignored, which the
// general decoder does not read, are skipped whatever their value. Other
// members, duplicates and anything else give up.
func (s *scanner) members(strs fields, ignored []string, prio, ver *int, tp **TraceParent) bool {
	seen := 0 // bit per known member
	return s.eachMember(func(key []byte) bool {
		bit := -1
		for i, f := range strs {
			if string(key) == f.key {
				bit = i
				if s.null() {
					*f.dst = "" // as the general decoder reads null
					break
				}
				v, ok := s.plainString()
				if !ok {
					return false
				}
				*f.dst = s.text(v)
				break
			}
		}
		if bit < 0 && tp != nil && string(key) == "traceparent" {
			bit = len(strs) + 2
			if seen&(1<<bit) != 0 {
				return false
			}
			if s.null() {
				*tp = nil // the reference writes null when it has no trace
			} else if *tp = new(TraceParent); !s.traceParent(*tp) {
				return false
			}
		}
		if bit < 0 && slices.Contains(ignored, string(key)) {
			_, ok := s.skipValue(2)
			return ok
		}
		if bit < 0 {
			dst := (*int)(nil)
			switch {
			case prio != nil && string(key) == "priority":
				dst, bit = prio, len(strs)
			case ver != nil && string(key) == "version":
				dst, bit = ver, len(strs)+1
			default:
				return false // a member the engine does not write: the general decoder
			}
			if !s.integer(dst) {
				return false
			}
		}
		if seen&(1<<bit) != 0 {
			return false
		}
		seen |= 1 << bit
		return true
	})
}

// integer reads an integer member's value, or null as the general decoder
// reads it (0).
func (s *scanner) integer(dst *int) bool {
	if s.null() {
		*dst = 0
		return true
	}
	s.ws()
	start := s.pos
	canon, ok := s.skipNumber()
	if !ok || !canon {
		return false
	}
	n, err := strconv.ParseInt(string(s.b[start:s.pos]), 10, 0)
	if err != nil {
		return false
	}
	*dst = int(n)
	return true
}

// eachMember reads an object whose member names are strings without
// escapes, calling member with each name once the colon is read: member
// reads the value, and false from it gives up.
func (s *scanner) eachMember(member func(key []byte) bool) bool {
	if !s.consume('{') {
		return false
	}
	if s.consume('}') {
		return true
	}
	for {
		key, ok := s.plainString()
		if !ok || !s.consume(':') || !member(key) {
			return false
		}
		if s.consume(',') {
			continue
		}
		return s.consume('}')
	}
}

// traceParent reads a headers.traceparent object of the shape the engine
// writes: trace_id and parent_id strings without escapes and a boolean
// sampled, each at most once. Anything else (null included) gives up, and
// the general decoder decides.
func (s *scanner) traceParent(tp *TraceParent) bool {
	var seen [3]bool
	return s.eachMember(func(key []byte) bool {
		s.ws()
		switch string(key) {
		case "trace_id", "parent_id":
			i, dst := 0, &tp.TraceID
			if string(key) == "parent_id" {
				i, dst = 1, &tp.ParentID
			}
			v, ok := s.plainString()
			if seen[i] || !ok {
				return false
			}
			seen[i], *dst = true, s.text(v)
		case "sampled":
			switch {
			case seen[2]:
				return false
			case s.literal("true"):
				tp.Sampled = true
			case s.literal("false"):
				tp.Sampled = false
			default:
				return false
			}
			seen[2] = true
		default:
			return false
		}
		return true
	})
}

func (s *scanner) metadata(md *Metadata) bool {
	var seen [len(metadataMembers)]bool
	return s.eachMember(func(key []byte) bool { return s.metadataMember(string(key), md, &seen) })
}

// metadataMembers are the members of metadata the fast path reads.
var metadataMembers = [...]string{"headers", "envelope", "domain", "event_store", "extensions"}

// metadataMember reads the value of metadata's member key; seen marks the
// members of metadataMembers already read.
func (s *scanner) metadataMember(key string, md *Metadata, seen *[len(metadataMembers)]bool) bool {
	i := slices.Index(metadataMembers[:], key)
	if i < 0 || seen[i] {
		return false // another member, or a duplicate: the general decoder
	}
	seen[i] = true
	switch key {
	case "event_store":
		// The reference's event store positions, which the general
		// decoder does not read.
		_, ok := s.skipValue(2)
		return ok
	case "extensions":
		return s.extensions()
	}
	s.ws()
	if s.pos < len(s.b) && s.b[s.pos] != '{' {
		return false // null or a wrong type: the general decoder
	}
	switch key {
	case "headers":
		h := &md.Headers
		return s.members(fields{{"id", &h.ID}, {"time", &h.Time}, {"type", &h.Type}, {"stream", &h.Stream}},
			protean.headers, nil, nil, &h.TraceParent)
	case "envelope":
		in := &md.Envelope
		return s.members(fields{{"specversion", &in.SpecVersion}, {"checksum", &in.Checksum}}, nil, nil, nil, nil)
	default: // domain
		d := &md.Domain
		return s.members(fields{
			{"kind", &d.Class}, {"stream_category", &d.StreamCategory}, {"sequence_id", &d.SequenceID},
			{"correlation_id", &d.CorrelationID}, {"causation_id", &d.CausationID},
		}, protean.domain, &d.Priority, &d.Version, nil)
	}
}

// protean names the metadata members the reference writes and the general
// decoder does not read (docs/protean.md): the fast path skips them, so an
// entry a Protean service wrote takes it too.
var protean = struct{ headers, domain []string }{
	headers: []string{"idempotency_key", "deadline"},
	domain:  []string{"fqn", "origin_stream", "asynchronous", "expected_version"},
}

// extensions reads metadata.extensions when it holds none of the members
// the general decoder reads from it (null, {} or a producer's own members,
// which are skipped); with one of those it gives up.
func (s *scanner) extensions() bool {
	if s.null() {
		return true
	}
	return s.eachMember(func(key []byte) bool {
		if k := string(key); k == ReplayGroupExtension || k == TraceStateExtension {
			return false
		}
		_, ok := s.skipValue(2)
		return ok
	})
}
