// Command dhcpserver runs ironcast's DHCP server (package dhcp over ipam
// and a bbolt store, wired as daemon.Run wires them, with bbolt's default
// options) as a process, for the benchmark and its crash check, without
// the API, TFTP and HTTP servers of `ironcast serve`. It is test-only:
// never point it at a real network; run it inside a network namespace.
//
//	dhcpserver -db FILE -iface IF [-iface IF] -subnet NAME=CIDR,START,END [-nosync]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/ironcast/ironcast/dhcp"
	"github.com/ironcast/ironcast/events"
	"github.com/ironcast/ironcast/ipam"
	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/store"
	"github.com/ironcast/ironcast/store/bolt"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "dhcpserver:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dhcpserver", flag.ContinueOnError)
	var ifaces, subnets list
	db := fs.String("db", "ironcast.db", "bbolt store file")
	nosync := fs.Bool("nosync", false, "skip fsync (not durable; for comparison only)")
	workers := fs.Int("workers", 0, "handler workers (0 = default)")
	leaseTime := fs.Int("lease", 0, "active lease time in seconds (0 = default)")
	batch := fs.Duration("batch-delay", 0, "bbolt MaxBatchDelay (0 = default)")
	verbose := fs.Bool("v", false, "debug logs")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile to this file")
	memprofile := fs.String("memprofile", "", "write an allocation profile to this file at exit")
	check := fs.Bool("check", false, "check the store and exit: no MAC holds two bound leases")
	fs.Var(&ifaces, "iface", "interface to serve (repeatable)")
	fs.Var(&subnets, "subnet", "NAME=CIDR,START,END to create if missing (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// `ironcast serve` runs with GOGC 200 unless GOGC is set (cli/serve.go
	// setServerGC); so does this, without linking the whole server.
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(200)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *memprofile != "" {
		defer func() {
			if err := writeAllocProfile(*memprofile); err != nil {
				fmt.Fprintln(os.Stderr, "memprofile:", err)
			}
		}()
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	st, err := bolt.Open(*db, &bolt.Options{NoSync: *nosync, Logger: log, MaxBatchDelay: *batch})
	if err != nil {
		return err
	}
	defer st.Close()
	if *check {
		return checkStore(ctx, st)
	}
	for _, s := range subnets {
		name, rest, _ := strings.Cut(s, "=")
		f := strings.Split(rest, ",")
		if len(f) != 3 {
			return fmt.Errorf("-subnet %q: want NAME=CIDR,START,END", s)
		}
		sub := &model.Subnet{Name: name, Subnet: f[0], ActiveStart: f[1], ActiveEnd: f[2], Enabled: true, ActiveLeaseTime: *leaseTime}
		if err := store.Create(ctx, st, sub); err != nil && !errors.Is(err, model.ErrExists) {
			return err
		}
	}
	alloc, err := ipam.New(ctx, ipam.Config{Store: st, Logger: log})
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	// Events go to a bus as in the daemon (here with no subscriber).
	srv, err := dhcp.New(dhcp.Config{Interfaces: ifaces, Leases: alloc, Logger: log, Workers: *workers, Registerer: reg, Notifier: &events.Bus{}})
	if err != nil {
		return err
	}
	log.Info("serving", "ifaces", ifaces.String(), "db", *db, "nosync", *nosync)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return alloc.Run(gctx) })
	g.Go(func() error { return srv.Serve(gctx) })
	err = g.Wait()
	log.Info("stopped")
	logCounters(log, reg)
	return err
}

// checkStore fails if a MAC holds more than one bound, unexpired lease, or
// a lease record is invalid. Addresses are the store's keys, so no address
// can be bound to two MACs at once by construction; this checks the other
// half of uniqueness after a crash.
func checkStore(ctx context.Context, st store.Store) error {
	ls, err := store.List[model.Lease](ctx, st)
	if err != nil {
		return err
	}
	now := time.Now()
	byMAC := map[string]string{}
	bound := 0
	var errs []error
	for _, l := range ls {
		if err := l.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("lease %s: %w", l.Addr, err))
		}
		if l.State != model.LeaseBound || l.Expired(now) {
			continue
		}
		bound++
		if other, ok := byMAC[l.Token]; ok {
			errs = append(errs, fmt.Errorf("%s holds %s and %s", l.Token, other, l.Addr))
		}
		byMAC[l.Token] = l.Addr
	}
	fmt.Printf("store check: %d leases, %d bound, %d MACs, %d problems\n", len(ls), bound, len(byMAC), len(errs))
	return errors.Join(errs...)
}

// logCounters logs the server's counters, so that the benchmark log says
// why requests were dropped.
func logCounters(log *slog.Logger, reg *prometheus.Registry) {
	mfs, err := reg.Gather()
	if err != nil {
		return
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if c := m.GetCounter(); c != nil {
				var labels []string
				for _, lp := range m.GetLabel() {
					labels = append(labels, lp.GetName()+"="+lp.GetValue())
				}
				log.Info("counter", "name", mf.GetName(), "labels", strings.Join(labels, ","), "value", c.GetValue())
			}
		}
	}
}

// writeAllocProfile writes the allocation profile to path.
func writeAllocProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
