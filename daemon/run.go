package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/ironcast/ironcast/api"
	"github.com/ironcast/ironcast/auth"
	"github.com/ironcast/ironcast/bootenvs"
	"github.com/ironcast/ironcast/bootfiles"
	"github.com/ironcast/ironcast/bootfs"
	"github.com/ironcast/ironcast/clientcfg"
	"github.com/ironcast/ironcast/dhcp"
	"github.com/ironcast/ironcast/events"
	"github.com/ironcast/ironcast/httpboot"
	"github.com/ironcast/ironcast/ipam"
	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/provision"
	"github.com/ironcast/ironcast/secrets"
	"github.com/ironcast/ironcast/store"
	"github.com/ironcast/ironcast/store/bolt"
	"github.com/ironcast/ironcast/tftp"
)

// shutdownGrace bounds how long servers get to finish requests in flight.
const shutdownGrace = 10 * time.Second

// Run starts ironcast with cfg and blocks until ctx ends (nil) or a
// server fails (its error). Every socket is opened before any server
// starts, so a port in use fails start-up at once.
func Run(ctx context.Context, cfg Config) error {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := cfg.Logger
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	bootRoot := filepath.Join(cfg.DataDir, "boot")
	if err := os.MkdirAll(bootRoot, 0o755); err != nil {
		return fmt.Errorf("create boot root: %w", err)
	}
	dbPath := filepath.Join(cfg.DataDir, "ironcast.db")
	if cfg.Restore != "" {
		if err := bolt.RestoreFile(cfg.Restore, dbPath); err != nil {
			return fmt.Errorf("restore %s: %w", cfg.Restore, err)
		}
		log.Info("store restored from backup", "backup", cfg.Restore, "path", dbPath)
	}
	st, err := bolt.Open(dbPath, &bolt.Options{Logger: log.With("component", "store"), Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer st.Close()

	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register process metrics: %w", err)
		}
	}
	instrumented, err := newStoreMetrics(st, reg)
	if err != nil {
		return err
	}

	secretKey, err := secrets.LoadOrCreateKey(filepath.Join(cfg.DataDir, "secrets.key"))
	if err != nil {
		return err
	}
	sealer, err := secrets.New(secretKey)
	if err != nil {
		return err
	}
	catalog, err := bootenvs.Load()
	if err != nil {
		return err
	}
	bus := &events.Bus{}

	var authn *auth.Authenticator
	tokens := &tokenIssuer{}
	svc, err := provision.New(provision.Config{
		Store: instrumented, Sealer: sealer, Catalog: catalog, Tokens: tokens, Notifier: bus,
		HTTPPort: cfg.HTTPPort, APIPort: cfg.APIPort, BootRoot: bootRoot, Logger: log.With("component", "provision"),
	})
	if err != nil {
		return err
	}
	if err := reg.Register(newRenderCacheCollector(svc.RenderCacheStats)); err != nil {
		return fmt.Errorf("register render cache metrics: %w", err)
	}
	signKey, err := auth.LoadOrCreateKey(filepath.Join(cfg.DataDir, "token.key"))
	if err != nil {
		return err
	}
	authn, err = auth.New(auth.Config{Key: signKey, Users: func(ctx context.Context, name string) (*model.User, error) {
		return store.Get[model.User](ctx, instrumented, name)
	}})
	if err != nil {
		return err
	}
	tokens.a = authn
	if err := svc.EnsureDefaults(ctx); err != nil {
		return err
	}
	if err := svc.LoadTemplates(ctx); err != nil {
		return err
	}
	pwFile, err := ensureAdmin(ctx, svc, cfg.DataDir, os.Stderr)
	if err != nil {
		return err
	}
	cert, certFile, err := ensureCert(cfg.DataDir, cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return err
	}
	syncBootPrograms(bootRoot, cfg.BootProgramDirs, log)

	src, err := bootfs.New(bootfs.Config{Root: bootRoot, Renderer: svc, Logger: log.With("component", "bootfs")})
	if err != nil {
		return err
	}
	defer src.Close()
	files, err := bootfiles.New(bootfiles.Config{Root: bootRoot, Logger: log.With("component", "bootfiles")})
	if err != nil {
		return err
	}
	defer files.Close()
	tl := svc.Timelines()
	tlSub := bus.Subscribe(4096, nil)
	defer tlSub.Close()
	served := fileObserver(bus)

	// Bind every socket first.
	apiLn, err := net.Listen("tcp", net.JoinHostPort(cfg.ListenAddr, strconv.Itoa(cfg.APIPort)))
	if err != nil {
		return fmt.Errorf("listen for the API: %w", err)
	}
	defer apiLn.Close()
	httpLn, err := net.Listen("tcp", net.JoinHostPort(cfg.ListenAddr, strconv.Itoa(cfg.HTTPPort)))
	if err != nil {
		return fmt.Errorf("listen for HTTP boot: %w", err)
	}
	defer httpLn.Close()

	tftpAddrs := cfg.TFTPAddrs
	if len(tftpAddrs) == 0 && len(cfg.DHCPInterfaces) > 0 {
		if tftpAddrs, err = interfaceAddrs(cfg.DHCPInterfaces); err != nil {
			return err
		}
	}
	var tftpServers []*tftp.Server
	for _, a := range tftpAddrs {
		s, err := tftp.Listen(tftp.Config{
			Addr: net.JoinHostPort(a, strconv.Itoa(cfg.TFTPPort)), Source: src, MaxTransfers: cfg.TFTPMaxTransfers,
			Logger: log.With("component", "tftp"), Registerer: prometheus.WrapRegistererWith(prometheus.Labels{"listen": a}, reg),
			OnTransfer: func(req model.FileRequest, n int64, d time.Duration, err error) {
				served(req, tftpStatus(err), n, d, err)
			},
		})
		if err != nil {
			return fmt.Errorf("listen for TFTP on %s: %w", a, err)
		}
		tftpServers = append(tftpServers, s)
	}

	var dhcpServer *dhcp.Server
	var alloc *ipam.Allocator
	if len(cfg.DHCPInterfaces) > 0 {
		alloc, err = ipam.New(ctx, ipam.Config{Store: instrumented, Logger: log.With("component", "ipam")})
		if err != nil {
			return err
		}
		dhcpServer, err = dhcp.New(dhcp.Config{
			Interfaces: cfg.DHCPInterfaces,
			Leases:     alloc,
			Booter:     svc.Booter(dhcp.StaticBooter{HTTPPort: cfg.HTTPPort}),
			Notifier:   bus,
			OnBound: func(ctx context.Context, l model.Lease) {
				if err := svc.LeaseBound(ctx, l); err != nil {
					log.Warn("record machine address", "mac", l.Token, "addr", l.Addr, "err", err)
				}
			},
			Logger:     log.With("component", "dhcp"),
			Registerer: reg,
		})
		if err != nil {
			return fmt.Errorf("start DHCP: %w", err)
		}
	}

	apiServer, err := newAPIServer(apiDeps{
		svc: svc, auth: authn, bus: bus, reg: reg, log: log.With("component", "api"),
		version: cfg.Version, timelines: tl, files: files,
		info: info{Version: cfg.Version, APIPort: cfg.APIPort, HTTPPort: cfg.HTTPPort, TFTPPort: cfg.TFTPPort,
			TFTP: len(tftpServers) > 0, DHCP: cfg.DHCPInterfaces},
	})
	if err != nil {
		return err
	}
	boot := httpboot.New(httpboot.Config{Source: src, Logger: log.With("component", "httpboot"), Registerer: reg, OnServed: served})
	apiHandler := apiServer.Handler()
	httpHandler := machineRoutes(authn, apiHandler, boot.Handler())

	endpoint := "https://" + net.JoinHostPort(localHost(cfg.ListenAddr), strconv.Itoa(cfg.APIPort))
	if err := clientcfg.Write(clientcfg.LocalServer{Endpoint: endpoint, CACertFile: certFile, PasswordFile: pwFile, Username: "admin"}); err != nil {
		log.Warn("write the local-server file for the CLI", "err", err)
	}
	log.Info("ironcast serving", "api", endpoint, "http", httpLn.Addr().String(), "tftp", tftpAddrs,
		"dhcp", cfg.DHCPInterfaces, "data", cfg.DataDir, "version", cfg.Version)
	if len(cfg.DHCPInterfaces) == 0 {
		log.Info("DHCP is off: no --dhcp-interface given")
	}

	g, gctx := errgroup.WithContext(ctx)
	apiSrv := &http.Server{Handler: apiHandler, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ErrorLog:  slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	// Closing the API server ends its event streams, which would otherwise
	// hold shutdown for the whole grace period.
	apiSrv.RegisterOnShutdown(apiServer.Close)
	g.Go(func() error { return serveHTTP(gctx, apiSrv, tls.NewListener(apiLn, apiSrv.TLSConfig)) })
	httpSrv := &http.Server{Handler: httpHandler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	httpSrv.RegisterOnShutdown(apiServer.Close)
	g.Go(func() error { return serveHTTP(gctx, httpSrv, httpLn) })
	for _, s := range tftpServers {
		g.Go(func() error { return s.Serve(gctx) })
	}
	if dhcpServer != nil {
		g.Go(func() error { return alloc.Run(gctx) })
		g.Go(func() error { return dhcpServer.Serve(gctx) })
	}
	g.Go(func() error { return svc.Run(gctx) })
	g.Go(func() error { return svc.RunReclaim(gctx, cfg.ReclaimInterval) })
	g.Go(func() error { return api.PublishStoreEvents(gctx, st, bus) })
	g.Go(func() error { tl.Run(gctx, tlSub.C); return nil })
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	log.Info("ironcast stopped", "err", err)
	return err
}

// serveHTTP serves until ctx ends, then shuts down with a fresh deadline.
func serveHTTP(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	return nil
}

// localHost is the host the local CLI should use for the API.
func localHost(listen string) string {
	if listen == "" || listen == "0.0.0.0" || listen == "::" {
		return "127.0.0.1"
	}
	return listen
}

// interfaceAddrs returns the IPv4 addresses of the named interfaces.
func interfaceAddrs(names []string) ([]string, error) {
	var out []string
	for _, n := range names {
		ifi, err := net.InterfaceByName(n)
		if err != nil {
			return nil, fmt.Errorf("interface %s: %w", n, err)
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			return nil, fmt.Errorf("addresses of %s: %w", n, err)
		}
		found := false
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
				out = append(out, p.Addr().String())
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("interface %s has no IPv4 address to serve TFTP on", n)
		}
	}
	return out, nil
}

// tokenIssuer issues the tokens rendered templates embed.
type tokenIssuer struct{ a *auth.Authenticator }

// Machine tokens live as long as an OS install may take; registration
// tokens only as long as a discovery boot.
const (
	machineTokenTTL  = 24 * time.Hour
	registerTokenTTL = time.Hour
)

func (t *tokenIssuer) MachineToken(uuid string) (string, error) {
	tok, _, err := t.a.Issue(auth.Principal{Name: "machine:" + uuid, Role: model.RoleReadOnly, Scope: auth.MachineScope(uuid)}, machineTokenTTL)
	return tok, err
}

func (t *tokenIssuer) RegisterToken() (string, error) {
	tok, _, err := t.a.Issue(auth.Principal{Name: "discovery", Role: model.RoleReadOnly, Scope: auth.ScopeRegister}, registerTokenTTL)
	return tok, err
}

// syncBootPrograms copies the iPXE and GRUB boot programs from the
// package directories into the boot root when the root lacks them, and
// warns about each one that cannot be found anywhere.
func syncBootPrograms(root string, dirs []string, log *slog.Logger) {
	for _, name := range bootPrograms {
		dst := filepath.Join(root, name.file)
		if _, err := os.Stat(dst); err == nil {
			continue
		}
		found := false
		for _, d := range dirs {
			src := filepath.Join(d, name.file)
			if err := copyFile(src, dst); err == nil {
				log.Debug("boot program installed", "file", name.file, "from", src)
				found = true
				break
			}
		}
		if !found {
			log.Warn("boot program missing: machines that need it will not boot", "file", name.file,
				"for", name.for_, "install", name.pkg, "or_put_it_in", root)
		}
	}
}

var bootPrograms = []struct{ file, for_, pkg string }{
	{"undionly.kpxe", "BIOS PXE", "Debian package ipxe"},
	{"ipxe.efi", "UEFI x86-64 PXE", "Debian package ipxe"},
	{"snponly.efi", "UEFI x86-64 PXE and HTTP boot", "Debian package ipxe"},
	{"grubnetaa64.efi", "arm64 UEFI", "Debian package grub-efi-arm64-bin (arm64 architecture)"},
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	b, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	return writeFileAtomic(dst, b, 0o644)
}
