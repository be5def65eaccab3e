// Command seed fills an ironcast data directory's store with N machines,
// for benchmarks of a server holding a large inventory. The machines are
// written through the same store helpers the server uses (normalised,
// validated, indexed), without fsync per write.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/store"
	"github.com/ironcast/ironcast/store/bolt"
)

func main() {
	dir := flag.String("data-dir", "", "ironcast data directory")
	n := flag.Int("n", 100000, "machines to create")
	flag.Parse()
	if err := run(*dir, *n); err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(1)
	}
}

func run(dir string, n int) error {
	if dir == "" {
		return fmt.Errorf("--data-dir is required")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	st, err := bolt.Open(filepath.Join(dir, "ironcast.db"), &bolt.Options{NoSync: true})
	if err != nil {
		return err
	}
	defer st.Close()
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	for range 256 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				m := &model.Machine{
					Name:          fmt.Sprintf("node-%06d", i),
					Description:   "rack " + fmt.Sprint(i/40) + ", slot " + fmt.Sprint(i%40),
					HardwareAddrs: []string{fmt.Sprintf("52:54:%02x:%02x:%02x:01", i>>16&0xff, i>>8&0xff, i&0xff), fmt.Sprintf("52:54:%02x:%02x:%02x:02", i>>16&0xff, i>>8&0xff, i&0xff)},
					Address:       fmt.Sprintf("10.%d.%d.%d", 100+i>>16&0x3f, i>>8&0xff, i&0xff),
					BootEnv:       "local",
					State:         model.StateRunning,
					Params:        map[string]any{"rack": fmt.Sprint(i / 40), "role": "worker", "ntp-servers": []any{"10.0.0.1", "10.0.0.2"}},
					Inventory: &model.Inventory{SerialNumber: fmt.Sprintf("SN%08d", i), Manufacturer: "QEMU", ProductName: "Standard PC",
						CPUs: 64, CPUModel: "AMD EPYC 7763", MemoryMiB: 524288,
						Disks: []model.Disk{{Name: "nvme0n1", SizeBytes: 3840755982336, Model: "SAMSUNG MZQL23T8HCLS"}},
						NICs:  []model.NIC{{Name: "eno1", MAC: fmt.Sprintf("52:54:%02x:%02x:%02x:01", i>>16&0xff, i>>8&0xff, i&0xff), Driver: "mlx5_core", Speed: 25000}}},
				}
				if err := store.Create(ctx, st, m); err != nil {
					select {
					case errc <- err:
					default:
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
	}
	c, err := st.Count(ctx, model.KindMachines)
	fmt.Printf("seeded %d machines\n", c)
	return err
}
