// Command tftp-bench-server serves a directory over ironcast's tftp
// package for test/bench/tftp/run.sh, or writes the benchmark's files.
//
//	tftp-bench-server -root DIR -addr 127.0.0.1:16901 [-cpuprofile FILE]
//	tftp-bench-server -gen FILE -size BYTES -seed N
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/ironcast/ironcast/bootfs"
	"github.com/ironcast/ironcast/tftp"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "tftp-bench-server:", err)
		os.Exit(1)
	}
}

func run() error {
	root := flag.String("root", "", "directory to serve")
	addr := flag.String("addr", "127.0.0.1:16901", "listen address (keep it on 127.0.0.1 or inside a namespace)")
	maxT := flag.Int("max", 256, "concurrent transfer cap")
	gen := flag.String("gen", "", "write a file of -size pseudo-random bytes from -seed and exit")
	size := flag.Int64("size", 1<<20, "size for -gen")
	seed := flag.Uint64("seed", 1, "seed for -gen")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the serving process to this file (pprof)")
	flag.Parse()
	if *gen != "" {
		return generate(*gen, *size, *seed)
	}
	src, err := bootfs.New(bootfs.Config{Root: *root})
	if err != nil {
		return err
	}
	defer src.Close()
	srv, err := tftp.Listen(tftp.Config{Addr: *addr, Source: src, MaxTransfers: *maxT})
	if err != nil {
		return err
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return srv.Serve(ctx)
}

func generate(name string, size int64, seed uint64) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var b [8]byte
	for n := int64(0); n < size; n += 8 {
		v := r.Uint64()
		for i := range b {
			b[i] = byte(v >> (8 * i))
		}
		if _, err := w.Write(b[:min(8, size-n)]); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
