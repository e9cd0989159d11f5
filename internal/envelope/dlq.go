package envelope

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxFailureReason is the largest failure_reason, in bytes, a DLQ entry
// carries; longer error texts are cut on a UTF-8 boundary and marked.
const MaxFailureReason = 1024

const truncatedMark = " ...[truncated]"

// ErrRawEntry is returned by StripDLQ for a DLQ entry made by NewDLQRaw:
// such an entry holds no envelope, only the original text (use
// ReplayPayload to get it back).
var ErrRawEntry = errors.New("envelope: DLQ entry holds raw text, not an envelope")

// NewDLQ returns the DLQ entry for e: the envelope plus "_dlq_metadata" (m,
// with FailureReason cut to MaxFailureReason bytes). Any DLQ metadata e
// already had (a replayed entry that failed again) is replaced.
func NewDLQ(e Envelope, m DLQMetadata) ([]byte, error) {
	m.FailureReason = clampReason(m.FailureReason)
	e.DLQ = &m
	b, err := Encode(e)
	if err != nil {
		return nil, fmt.Errorf("envelope: dlq entry: %w", err)
	}
	return b, nil
}

// NewDLQFromEntry returns the DLQ entry for a stream entry as it was read,
// whatever it holds. A JSON object gets "_dlq_metadata" added (replacing any
// earlier one) with every other member kept, including members this package
// does not model, so an entry written by the reference loses nothing on its
// way through the DLQ. Anything else (not JSON, not an object, not UTF-8)
// becomes a NewDLQRaw entry.
func NewDLQFromEntry(raw []byte, m DLQMetadata) ([]byte, error) {
	top, err := decodeTop(raw)
	if err != nil {
		return NewDLQRaw(string(raw), m)
	}
	m.FailureReason = clampReason(m.FailureReason)
	meta, err := marshal(m)
	if err != nil {
		return nil, err
	}
	top.m["_dlq_metadata"] = meta
	return marshal(top.m)
}

// rawDLQEntry is the DLQ form of an entry that is not an envelope at all.
// Data and Metadata are always JSON null, so that tools expecting the
// envelope keys (the reference's DLQ listing among them) find them.
type rawDLQEntry struct {
	Data      json.RawMessage `json:"data"`
	Metadata  json.RawMessage `json:"metadata"`
	Raw       *string         `json:"raw,omitempty"`
	RawBase64 string          `json:"raw_base64,omitempty"`
	DLQ       DLQMetadata     `json:"_dlq_metadata"`
}

// NewDLQRaw returns the DLQ entry for a stream entry that Decode rejected
// (garbage, not JSON, not an envelope):
//
//	{"data": null, "metadata": null, "raw": "<original text>", "_dlq_metadata": {...}}
//
// When raw is not valid UTF-8 it cannot travel as a JSON string without
// loss, so it is stored base64-encoded in "raw_base64" instead of "raw".
// Replaying such an entry (ReplayPayload) re-publishes the original text
// verbatim, byte for byte; it will be rejected again unless whatever reads
// it has changed.
func NewDLQRaw(raw string, m DLQMetadata) ([]byte, error) {
	m.FailureReason = clampReason(m.FailureReason)
	entry := rawDLQEntry{Data: json.RawMessage("null"), Metadata: json.RawMessage("null"), DLQ: m}
	if utf8.ValidString(raw) {
		entry.Raw = &raw
	} else {
		entry.RawBase64 = base64.StdEncoding.EncodeToString([]byte(raw))
	}
	return marshal(entry)
}

// StripDLQ decodes a DLQ entry (as Decode does, checksum included) and
// returns the original envelope without its DLQ metadata, ready to be
// encoded and re-published. A NewDLQRaw entry gives ErrRawEntry.
func StripDLQ(raw []byte) (Envelope, error) {
	if isRaw, err := isRawEntry(raw); err != nil {
		return Envelope{}, err
	} else if isRaw {
		return Envelope{}, ErrRawEntry
	}
	e, err := Decode(raw)
	if err != nil {
		return Envelope{}, err
	}
	e.DLQ = nil
	return e, nil
}

// ReplayPayload returns the bytes to re-publish for a DLQ entry: for a
// NewDLQRaw entry the original text, verbatim; otherwise the entry's JSON
// object without "_dlq_metadata", every other member kept as it was
// (including members this package does not model, such as the reference's
// traceparent or extensions). It does not validate the envelope: a replayed
// entry goes through Decode again when it is consumed.
func ReplayPayload(raw []byte) ([]byte, error) {
	top, err := decodeTop(raw)
	if err != nil {
		return nil, fmt.Errorf("envelope: replay: %w", err)
	}
	if ok, _ := isRawEntry(raw); ok {
		if text, ok := top.m["raw"]; ok {
			var s string
			if err := json.Unmarshal(text, &s); err != nil {
				return nil, fmt.Errorf("envelope: replay: raw is not a string: %w", err)
			}
			return []byte(s), nil
		}
		var s string
		if err := json.Unmarshal(top.m["raw_base64"], &s); err != nil {
			return nil, fmt.Errorf("envelope: replay: raw_base64 is not a string: %w", err)
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("envelope: replay: raw_base64: %w", err)
		}
		return b, nil
	}
	delete(top.m, "_dlq_metadata")
	return marshal(top.m)
}

// isRawEntry reports whether raw is a NewDLQRaw entry: null data and a raw
// or raw_base64 member.
func isRawEntry(raw []byte) (bool, error) {
	top, err := decodeTop(raw)
	if err != nil {
		return false, err
	}
	_, hasRaw := top.m["raw"]
	_, hasB64 := top.m["raw_base64"]
	data, hasData := top.m["data"]
	return (hasRaw || hasB64) && (!hasData || isNull(data)), nil
}

// clampReason makes the failure reason valid UTF-8 (so JSON encoding does not
// grow it) and at most MaxFailureReason bytes.
func clampReason(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= MaxFailureReason {
		return s
	}
	return truncate(s, MaxFailureReason-len(truncatedMark)) + truncatedMark
}
