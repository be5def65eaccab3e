package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ironcast/ironcast/daemon"
)

var (
	logLevels  = map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}
	logFormats = []string{"text", "json"}
)

// newLogger builds the daemon's logger on w.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	lvl, ok := logLevels[strings.ToLower(level)]
	if !ok {
		return nil, usageErrorf("--log-level %q is not one of debug, info, warn, error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageErrorf("--log-format %q is not one of %s", format, strings.Join(logFormats, ", "))
}

// serverGCPercent is the garbage collector's target for `serve` when
// GOGC is not set. The server allocates a little per request and packet
// around a live heap that stays small (tens of MB for 20,000 machines),
// so Go's default of 100 collects very often; at 200 a machine's
// rendered boot script costs 6-14 % less CPU in test/bench/http (paired
// runs on a 2-core machine) for about 4 % more peak memory there.
const serverGCPercent = 200

// setServerGC applies serverGCPercent unless the operator set GOGC.
func setServerGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(serverGCPercent)
	}
}

func (a *app) serveCmd() *cobra.Command {
	var (
		cfg               daemon.Config
		logLevel, logForm string
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the ironcast server",
		Long: `Run the ironcast server: the HTTPS API (--api-port), HTTP boot (--http-port),
and, once interfaces are named, DHCP (--dhcp-interface) and TFTP.

With no flags it stores everything under --data-dir, generates a self-signed
certificate there, creates the admin user with a random password written to a
0600 file in the data dir, and records its endpoint for the local CLI.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(a.errOut, logLevel, logForm)
			if err != nil {
				return err
			}
			cfg.Logger = log
			setServerGC()
			cfg.Version = version()
			cfg.Defaults()
			if err := cfg.Validate(); err != nil {
				return &usageError{err: err}
			}
			return a.serve(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", daemon.DefaultDataDir(), "directory for the store, TLS key pair, secrets and boot files")
	f.StringVar(&cfg.Restore, "restore", "", "replace the store with this backup `FILE` before starting")
	f.StringVar(&cfg.ListenAddr, "listen", "", "address the API and HTTP boot listen on (default all)")
	f.IntVar(&cfg.APIPort, "api-port", 8092, "HTTPS API port")
	f.IntVar(&cfg.HTTPPort, "http-port", 8091, "plain HTTP boot port")
	f.IntVar(&cfg.TFTPPort, "tftp-port", 69, "TFTP port")
	f.IntVar(&cfg.TFTPMaxTransfers, "tftp-max-transfers", 256, "concurrent TFTP transfers per address; more are refused with an error packet and a warning")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate for the API (default: self-signed, generated into --data-dir)")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key for --tls-cert")
	f.StringArrayVar(&cfg.DHCPInterfaces, "dhcp-interface", nil, "serve DHCP and proxyDHCP on this interface (repeatable; none = DHCP off)")
	f.StringArrayVar(&cfg.TFTPAddrs, "tftp-addr", nil, "IPv4 address TFTP listens on (repeatable; default: the DHCP interfaces' addresses)")
	f.StringArrayVar(&cfg.BootProgramDirs, "boot-program-dir", nil, "directory searched for iPXE and GRUB boot programs (repeatable)")
	f.DurationVar(&cfg.ReclaimInterval, "reclaim-interval", daemon.DefaultReclaimInterval, "how often pools are reclaimed: expired allocations and long-failed machines released, MinReady kept")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error (API requests: writes and errors at info, successful reads at debug)")
	f.StringVar(&logForm, "log-format", "text", fmt.Sprintf("log format: %s", strings.Join(logFormats, " or ")))
	return cmd
}
