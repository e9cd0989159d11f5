package lanewayconfig

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNotFound is returned (wrapped) by Load when the directory holds neither
// .domain.toml nor domain.toml and LoadOptions.AllowMissing is false.
var ErrNotFound = errors.New("no domain.toml found")

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Path is the key as written in the file: "server.priority_lanes.threshold",
	// or "production.server.priority_lanes.threshold" when the value came
	// from the production overlay. For the environment selection itself it
	// is "LANEWAY_ENV" or "--env".
	Path string
	// Value is the offending value in TOML syntax ("a:b" quoted, 0.5, true);
	// "" when the problem is about a whole table or a missing key.
	Value string
	// Msg says what is wrong and, where it can, how to fix it.
	Msg string
}

// String renders `path = value: msg`, or `path: msg` without a value.
func (p Problem) String() string {
	if p.Value == "" {
		return p.Path + ": " + p.Msg
	}
	return p.Path + " = " + p.Value + ": " + p.Msg
}

// ValidationError lists every problem found in one configuration. Load,
// Parse and Validate return it (as *ValidationError) so callers can show
// each problem; nothing is partially applied.
type ValidationError struct {
	Source   string // the file, "" when unknown
	Problems []Problem
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid configuration")
	if e.Source != "" {
		b.WriteString(" in " + e.Source)
	}
	if len(e.Problems) == 1 {
		b.WriteString(": " + e.Problems[0].String())
		return b.String()
	}
	fmt.Fprintf(&b, " (%d problems):", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  " + p.String())
	}
	return b.String()
}

// SyntaxError is a file that is not valid TOML.
type SyntaxError struct {
	File      string // "" when parsing bytes
	Line, Col int    // 1-based
	Msg       string
	Err       error // the TOML parser's error
}

func (e *SyntaxError) Error() string {
	file := e.File
	if file == "" {
		file = FileName
	}
	return fmt.Sprintf("%s:%d:%d: invalid TOML: %s", file, e.Line, e.Col, e.Msg)
}

func (e *SyntaxError) Unwrap() error { return e.Err }
