// Command httpbench seeds an ironcast data directory for
// test/bench/http/run.sh: N machines that boot discovery (so each one's
// iPXE script embeds a machine token), each in one of ten rack profiles,
// with param definitions and global params, written straight into the
// store the way `ironcast serve` will read it. The benchmark then runs the
// real `ironcast serve` on that directory.
//
// Machine i has the MAC 52:54:02:XX:YY:ZZ (i in hex) and is named
// node-NNNNNN.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/store"
	"github.com/ironcast/ironcast/test/bench/benchseed"
)

func main() {
	dir := flag.String("data-dir", "", "ironcast data directory to seed")
	n := flag.Int("machines", 20000, "machines to create")
	flag.Parse()
	if err := run(*dir, *n); err != nil {
		fmt.Fprintln(os.Stderr, "httpbench:", err)
		os.Exit(1)
	}
}

// MAC returns the primary MAC of machine i.
func MAC(i int) string {
	return fmt.Sprintf("52:54:02:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff)
}

func run(dir string, n int) error {
	if n > 1<<24 {
		return fmt.Errorf("at most %d machines", 1<<24)
	}
	st, err := benchseed.Open(dir)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx := context.Background()
	objs := []model.Object{
		&model.Param{Name: "ntp-servers", Default: []any{"pool.ntp.org"}},
		&model.Param{Name: "rack"},
		&model.Param{Name: "role", Default: "worker"},
		&model.Param{Name: "locale", Default: "en_US.UTF-8"},
		&model.Profile{Name: model.GlobalProfile, Description: "Params for every machine.",
			Params: map[string]any{"timezone": "UTC", "dns-domain": "lab.example"}},
	}
	for r := range 10 {
		objs = append(objs, &model.Profile{Name: fmt.Sprintf("rack-%d", r), Params: map[string]any{"rack": r, "ntp-servers": []any{"10.0.0.1"}}})
	}
	for _, o := range objs {
		if err := store.Create(ctx, st, o); err != nil {
			return fmt.Errorf("create %s %s: %w", o.Kind(), o.Key(), err)
		}
	}
	c, err := benchseed.Machines(ctx, st, n, 64, func(i int) *model.Machine {
		return &model.Machine{
			Name: fmt.Sprintf("node-%06d", i), HardwareAddrs: []string{MAC(i)},
			Address: fmt.Sprintf("10.%d.%d.%d", 100+i>>16&0x3f, i>>8&0xff, i&0xff), Arch: model.ArchAMD64,
			BootEnv: model.BootEnvDiscovery, Profiles: []string{fmt.Sprintf("rack-%d", i%10)},
			Params: map[string]any{"role": "worker", "index": i},
		}
	})
	if err != nil {
		return err
	}
	fmt.Printf("seeded %d machines\n", c)
	return nil
}
