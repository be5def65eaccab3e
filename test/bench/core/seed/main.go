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

	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/test/bench/benchseed"
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
	st, err := benchseed.Open(dir)
	if err != nil {
		return err
	}
	defer st.Close()
	c, err := benchseed.Machines(context.Background(), st, n, 256, machine)
	if err != nil {
		return err
	}
	fmt.Printf("seeded %d machines\n", c)
	return nil
}

// machine i: two NICs, an inventory and params, about 1.1 KB of JSON.
func machine(i int) *model.Machine {
	mac := func(nic int) string {
		return fmt.Sprintf("52:54:%02x:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff, nic)
	}
	return &model.Machine{
		Name:          fmt.Sprintf("node-%06d", i),
		Description:   "rack " + fmt.Sprint(i/40) + ", slot " + fmt.Sprint(i%40),
		HardwareAddrs: []string{mac(1), mac(2)},
		Address:       fmt.Sprintf("10.%d.%d.%d", 100+i>>16&0x3f, i>>8&0xff, i&0xff),
		BootEnv:       "local",
		State:         model.StateRunning,
		Params:        map[string]any{"rack": fmt.Sprint(i / 40), "role": "worker", "ntp-servers": []any{"10.0.0.1", "10.0.0.2"}},
		Inventory: &model.Inventory{SerialNumber: fmt.Sprintf("SN%08d", i), Manufacturer: "QEMU", ProductName: "Standard PC",
			CPUs: 64, CPUModel: "AMD EPYC 7763", MemoryMiB: 524288,
			Disks: []model.Disk{{Name: "nvme0n1", SizeBytes: 3840755982336, Model: "SAMSUNG MZQL23T8HCLS"}},
			NICs:  []model.NIC{{Name: "eno1", MAC: mac(1), Driver: "mlx5_core", Speed: 25000}}},
	}
}
