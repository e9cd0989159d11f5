// Package lanewayconfig loads a domain's configuration file, domain.toml,
// into the Config structs every other Laneway package reads.
//
// Load looks for DIR/.domain.toml, then DIR/domain.toml, and runs one
// pipeline (Parse runs the same pipeline on bytes):
//
//  1. decode the TOML;
//  2. deep-merge the environment overlay named by LoadOptions.Env or
//     LANEWAY_ENV (the top-level table [production] of
//     [production.server.priority_lanes]) over the base, and set every other
//     overlay aside;
//  3. substitute ${VAR} and ${VAR:-default} in string values; a value that
//     is exactly one reference is converted to the key's type, so
//     enabled = "${LANES:-false}" gives a boolean;
//  4. validate strictly: unknown keys (with a "did you mean"), wrong types,
//     out-of-range values, a colliding backfill_suffix, unknown providers
//     and malformed URLs are all reported at once, each naming the key path
//     and the bad value;
//  5. every key the file does not set keeps the default that Default
//     returns (the XxxDefault constants).
//
// docs/configuration.md lists every key and the decisions behind these rules.
package lanewayconfig
