package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/ironcast/ironcast/provision"
)

// DefaultReclaimInterval is the pools' reclaim interval when none is set.
const DefaultReclaimInterval = provision.DefaultReclaimInterval

// Config is everything `ironcast serve` needs. Its zero value, after
// Defaults, runs a safe server: the HTTPS API and plain HTTP boot on every
// address, no DHCP and no TFTP until interfaces are named.
type Config struct {
	// DataDir holds the bbolt store, the TLS certificate and key, the token
	// signing key, the secrets key, the admin password file and the boot
	// root (DataDir/boot). Default: DefaultDataDir().
	DataDir string
	// Restore, if set, replaces the store with this backup file before start.
	Restore string
	// ListenAddr is the address the API and HTTP boot listen on ("" = all).
	ListenAddr string
	// APIPort is the HTTPS API port (default 8092).
	APIPort int
	// HTTPPort is the plain HTTP boot port (default 8091).
	HTTPPort int
	// TFTPPort is the TFTP port (default 69).
	TFTPPort int
	// TFTPMaxTransfers caps concurrent TFTP transfers per listening
	// address; requests beyond it get an error packet and a warning is
	// logged. 0 means tftp's default (256).
	TFTPMaxTransfers int
	// TLSCert and TLSKey are PEM files; when empty a self-signed pair is
	// generated into DataDir on first start.
	TLSCert, TLSKey string
	// DHCPInterfaces are the interfaces DHCP (and proxyDHCP) answer on.
	// None means DHCP is off.
	DHCPInterfaces []string
	// TFTPAddrs are the IPv4 addresses TFTP listens on. Empty means the
	// addresses of DHCPInterfaces; with neither, TFTP is off.
	TFTPAddrs []string
	// BootProgramDirs are searched, in order, for iPXE and GRUB boot
	// programs (undionly.kpxe, ipxe.efi, snponly.efi, grubnetaa64.efi)
	// that are not in the boot root. Default: /usr/lib/ipxe and
	// /usr/lib/grub/arm64-efi/monolithic.
	BootProgramDirs []string
	// ReclaimInterval is how often the reclaim loop releases expired
	// allocations and long-failed machines and keeps pools' MinReady
	// (default 30s).
	ReclaimInterval time.Duration
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Version is reported by /api/v1/info.
	Version string
}

// DefaultDataDir is /var/lib/ironcast for root and
// $XDG_DATA_HOME/ironcast (~/.local/share/ironcast) for other users.
func DefaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/ironcast"
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "ironcast")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "ironcast-data"
	}
	return filepath.Join(home, ".local", "share", "ironcast")
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir()
	}
	if c.APIPort == 0 {
		c.APIPort = 8092
	}
	if c.HTTPPort == 0 {
		c.HTTPPort = 8091
	}
	if c.TFTPPort == 0 {
		c.TFTPPort = 69
	}
	if len(c.BootProgramDirs) == 0 {
		c.BootProgramDirs = []string{"/usr/lib/ipxe", "/usr/lib/grub/arm64-efi/monolithic"}
	}
	if c.ReclaimInterval == 0 {
		c.ReclaimInterval = DefaultReclaimInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports configuration errors before any socket opens.
func (c *Config) Validate() error {
	var errs []error
	for name, p := range map[string]int{"api-port": c.APIPort, "http-port": c.HTTPPort, "tftp-port": c.TFTPPort} {
		if p < 1 || p > 65535 {
			errs = append(errs, fmt.Errorf("--%s %d is not a port", name, p))
		}
	}
	if c.APIPort == c.HTTPPort {
		errs = append(errs, fmt.Errorf("--api-port and --http-port are both %d", c.APIPort))
	}
	if c.TFTPMaxTransfers < 0 {
		errs = append(errs, fmt.Errorf("--tftp-max-transfers %d is negative", c.TFTPMaxTransfers))
	}
	if c.ReclaimInterval < 0 {
		errs = append(errs, fmt.Errorf("--reclaim-interval %s is negative", c.ReclaimInterval))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key must be given together"))
	}
	return errors.Join(errs...)
}
