package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ironcast/ironcast/clientcfg"
	"github.com/ironcast/ironcast/daemon"
)

// Version is the ironcast version, set at build time with
// -ldflags "-X github.com/ironcast/ironcast/cli.Version=v1.2.3". When
// empty, the module version from the build info is used, or "dev".
var Version string

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// Execute runs the ironcast command with the process's arguments and
// standard streams, and returns the exit code for os.Exit.
func Execute(ctx context.Context) int {
	return Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
}

// Run runs the ironcast command with args (without the program name),
// reading from in and writing results to out and errors to errOut. It
// returns the exit code: 0 on success, 1 on an error, 2 on a usage error.
// Environment variables and the config files are read as by Execute.
func Run(ctx context.Context, args []string, in io.Reader, out, errOut io.Writer) int {
	return newApp(in, out, errOut).run(ctx, args)
}

// app holds one invocation's streams and global flags.
type app struct {
	in          io.Reader
	out, errOut io.Writer

	// Global flags; flags.Insecure is set from insecure when the flag was given.
	flags      conn
	insecure   bool
	noCache    bool // --no-token-cache
	configPath string
	output     string

	// serve runs the daemon; tests replace it.
	serve func(context.Context, daemon.Config) error
}

func newApp(in io.Reader, out, errOut io.Writer) *app {
	return &app{in: in, out: out, errOut: errOut, serve: daemon.Run}
}

func (a *app) run(ctx context.Context, args []string) int {
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(a.in)
	root.SetOut(a.out)
	root.SetErr(a.errOut)
	err := root.ExecuteContext(ctx)
	if err != nil && !errors.Is(err, errSilent) {
		fmt.Fprintf(a.errOut, "ironcast: %s\n", message(err))
	}
	return exitCode(err)
}

// message renders err on one line.
func message(err error) string {
	s := strings.TrimSpace(describe(err))
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

const rootLong = `ironcast provisions bare-metal machines: DHCP, TFTP and HTTP boot, per-machine
templates and params, behind an authenticated REST API.

"ironcast serve" runs the server. Every other command talks to a server's API.

Where the CLI finds its server and credentials, highest precedence first:
  1. flags:        --endpoint, --token, --username, --password, --ca-cert, --insecure
  2. environment:  IRONCAST_ENDPOINT, IRONCAST_TOKEN, IRONCAST_USERNAME,
                   IRONCAST_PASSWORD, IRONCAST_CA_CERT, IRONCAST_INSECURE
  3. config file:  --config, or $XDG_CONFIG_HOME/ironcast/config.yaml
                   (~/.config/ironcast/config.yaml), with the keys endpoint,
                   token, username, password, ca-cert, insecure
  4. local server: a running "ironcast serve" writes
                   $XDG_CONFIG_HOME/ironcast/local-server.json; when nothing
                   above names another endpoint, the CLI uses its endpoint and
                   CA and, without credentials, logs in as admin with the
                   password file it names (readable only by the server's user).
Each setting is taken from the highest source that sets it. A token wins over
a username and password; with a username and password the CLI logs in first.

After logging in, the CLI keeps the token in a file only its user can read
($XDG_CACHE_HOME/ironcast/tokens, ~/.cache/ironcast/tokens; one file per
endpoint and user) and reuses it until a minute before it expires, so a script
calling the CLI in a loop logs in once. A token the server refuses is dropped
and the CLI logs in again. --no-token-cache or IRONCAST_NO_TOKEN_CACHE=1 turns
this off; a token given with --token or IRONCAST_TOKEN is never cached.

Objects are given as JSON or YAML: as an argument, as @FILE or -f FILE, or
as - to read stdin. Errors print one line and exit 1; usage errors exit 2.`

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "ironcast",
		Short:         "Bare-metal provisioning: DHCP, TFTP, HTTP boot and a REST API",
		Long:          rootLong,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          noUnknownCommand,
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err: err} })

	pf := root.PersistentFlags()
	pf.StringVar(&a.flags.Endpoint, "endpoint", "", "API endpoint, e.g. https://host:8092 (env "+envEndpoint+")")
	pf.StringVar(&a.flags.Token, "token", "", "bearer token (env "+envToken+")")
	pf.StringVar(&a.flags.Username, "username", "", "user to log in as (env "+envUsername+")")
	pf.StringVar(&a.flags.Password, "password", "", "password to log in with; prefer "+envPassword)
	pf.StringVar(&a.flags.CACert, "ca-cert", "", "PEM file of the CA that signed the API certificate (env "+envCACert+")")
	pf.BoolVar(&a.insecure, "insecure", false, "skip TLS certificate verification (env "+envInsecure+")")
	pf.BoolVar(&a.noCache, "no-token-cache", false, "log in on every call instead of reusing the token cached in "+tokenDirHelp()+" (env "+envNoTokenCache+")")
	pf.StringVar(&a.configPath, "config", "", "config file (default "+clientcfg.ConfigPath()+")")
	pf.StringVarP(&a.output, "output", "o", "", "output format: json, yaml or table (default: table for list, json otherwise)")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if a.output != "" {
			return checkFormat(a.output)
		}
		return nil
	}

	root.AddCommand(a.serveCmd(), a.versionCmd(), a.selftestCmd())
	a.addAPICommands(root)
	a.addFileCommands(root)
	return root
}

// noUnknownCommand is the Args check of commands that only group others:
// any argument is a subcommand that does not exist.
func noUnknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return nil
}

// group returns a command that only holds subcommands.
func group(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  noUnknownCommand,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
}

// exactArgs is cobra.ExactArgs returning a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErrorf("%s: want %d argument(s), got %d (usage: %s)", subPath(cmd), n, len(args), cmd.UseLine())
		}
		return nil
	}
}

// subPath is the command path without the program name, for messages
// that "ironcast: " already starts.
func subPath(cmd *cobra.Command) string {
	p := cmd.CommandPath()
	if i := strings.IndexByte(p, ' '); i >= 0 {
		return p[i+1:]
	}
	return p
}

// rangeArgs is cobra.RangeArgs returning a usage error.
func rangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return usageErrorf("%s: want %d to %d arguments, got %d (usage: %s)", subPath(cmd), lo, hi, len(args), cmd.UseLine())
		}
		return nil
	}
}

// format returns -o, or def when it was not given.
func (a *app) format(def string) string {
	if a.output != "" {
		return a.output
	}
	return def
}

func (a *app) printer(def string) printer { return printer{out: a.out, format: a.format(def)} }

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the ironcast version",
		Args:  exactArgs(0),
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintln(a.out, version())
			return err
		},
	}
}
