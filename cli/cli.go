// Package cli is the laneway command tree. User applications call
// cli.Main(domainFactory) to get the operator commands (server, config, db,
// lanes, doctor, dlq, outbox) for their own domain; WithCommands adds a
// program's own commands. The shipped binary (cmd/laneway) compiles in
// examples/customers and adds its demo and example jobs that way.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/laneway/laneway"
	"github.com/laneway/laneway/lanewayconfig"
)

// DomainFactory builds the domain the commands operate on.
type DomainFactory func() (*laneway.Domain, error)

// Option changes the command tree Main, Run and New build.
type Option func(*options)

type options struct {
	commands []func(Env) []*cobra.Command
}

// WithCommands adds the commands f builds to the tree, beside the operator
// commands. f is called once per tree with the tree's Env.
func WithCommands(f func(Env) []*cobra.Command) Option {
	return func(o *options) { o.commands = append(o.commands, f) }
}

// Env is what an added command shares with the built-in ones: the output
// streams and the --domain and --env flags, read when the command runs.
type Env struct{ g *globals }

// Stdout is where a command writes its result.
func (e Env) Stdout() io.Writer { return e.g.stdout }

// Stderr is where a command writes progress, warnings and logs.
func (e Env) Stderr() io.Writer { return e.g.stderr }

// Config loads domain.toml from --domain with the --env overlay.
func (e Env) Config() (*lanewayconfig.Config, error) { return e.g.loadConfig() }

// Domain builds the program's domain.
func (e Env) Domain() (*laneway.Domain, error) { return e.g.domain() }

// Exit is an error that makes the command line exit with code after
// printing msg (nothing when msg is empty) as one line on stderr.
func Exit(code int, msg string) error { return exitError{code: code, msg: msg} }

// Main runs the command line with os.Args and exits with its status.
func Main(domain DomainFactory, opts ...Option) {
	// go-redis logs every failed dial on its own; the commands report
	// Redis being unreachable themselves, as one line (or one log entry per
	// state change in the engine).
	redis.SetLogger(silentRedisLog{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, domain, os.Args[1:], os.Stdout, os.Stderr, opts...)
	stop()
	os.Exit(code)
}

// Run executes args and returns the exit status; output goes to the writers
// so tests can capture it. User errors print one line on stderr, never a
// stack trace.
func Run(ctx context.Context, domain DomainFactory, args []string, stdout, stderr io.Writer, opts ...Option) int {
	root := New(domain, stdout, stderr, opts...)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		var ex exitError
		if errors.As(err, &ex) {
			if ex.msg != "" {
				fmt.Fprintln(stderr, "laneway: "+ex.msg)
			}
			return ex.code
		}
		fmt.Fprintln(stderr, "laneway: "+strings.TrimSpace(err.Error()))
		return 1
	}
	return 0
}

type silentRedisLog struct{}

func (silentRedisLog) Printf(context.Context, string, ...any) {}

type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

// globals are the flags every command shares.
type globals struct {
	domainDir string
	env       string
	logLevel  string
	logFormat string
	stdin     io.Reader // confirmations of destructive commands (confirm.go)
	stdout    io.Writer
	stderr    io.Writer
	domain    DomainFactory
}

// New builds the command tree (no package globals).
func New(domain DomainFactory, stdout, stderr io.Writer, opts ...Option) *cobra.Command {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	g := &globals{stdin: os.Stdin, stdout: stdout, stderr: stderr, domain: domain}
	root := &cobra.Command{
		Use:           "laneway",
		Short:         "Event-driven domain services with priority lanes",
		Long:          "Laneway runs event-driven domain services on Redis Streams with priority lanes:\nproduction events are always served before bulk work (migrations, backfills).",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&g.domainDir, "domain", ".", "directory holding domain.toml (or .domain.toml)")
	pf.StringVar(&g.env, "env", "", "environment overlay to apply (default: $LANEWAY_ENV)")
	pf.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	pf.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	root.AddCommand(
		newServerCmd(g),
		newDashboardCmd(g),
		newConfigCmd(g),
		newDBCmd(g),
		newLanesCmd(g),
		newDoctorCmd(g),
		newDLQCmd(g),
		newOutboxCmd(g),
	)
	for _, f := range o.commands {
		root.AddCommand(f(Env{g})...)
	}
	strict(root)
	return root
}

func (g *globals) logger() (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", g.logLevel)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch g.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(g.stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(g.stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", g.logFormat)
}

func (g *globals) loadConfig() (*lanewayconfig.Config, error) {
	return lanewayconfig.Load(lanewayconfig.LoadOptions{Dir: g.domainDir, Env: g.env})
}

// openApp loads the config, builds the domain and opens the database.
func (g *globals) openApp(ctx context.Context) (*laneway.App, error) {
	cfg, err := g.loadConfig()
	if err != nil {
		return nil, err
	}
	dom, err := g.domain()
	if err != nil {
		return nil, err
	}
	return laneway.Open(ctx, dom, cfg, laneway.Options{})
}
