// Package uplot embeds uPlot, the small charting library the dashboard and
// the demo report draw their charts with, so the binary needs no network and
// no Node.js to serve or write them.
//
// The files are uPlot 1.6.32 exactly as published on the npm registry
// (package "uplot", dist/uPlot.iife.min.js and dist/uPlot.min.css), MIT
// licensed: see LICENSE in this directory. To upgrade, replace the three
// files from the new version's package and change Version.
package uplot

import _ "embed"

// Version is the vendored uPlot release.
const Version = "1.6.32"

// JS is uPlot's minified browser build; it defines the global uPlot.
//
//go:embed uPlot.iife.min.js
var JS string

// CSS is uPlot's stylesheet.
//
//go:embed uPlot.min.css
var CSS string

// License is uPlot's licence text, served next to the library.
//
//go:embed LICENSE
var License string
