package bolt_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/store"
	"github.com/ironcast/ironcast/store/bolt"
)

// fixtureMachines is the size of the shared store for the read benchmarks.
const fixtureMachines = 100_000

var (
	fixtureOnce sync.Once
	fixtureDir  string
	fixturePath string
	fixtureErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fixtureDir != "" {
		os.RemoveAll(fixtureDir)
	}
	os.Exit(code)
}

// benchMAC is machine i's first MAC.
func benchMAC(i int) string {
	return fmt.Sprintf("52:54:%02x:%02x:%02x:%02x", byte(i>>24), byte(i>>16), byte(i>>8), byte(i))
}

// benchMachine is a fully inventoried server, about 1 KiB of JSON.
func benchMachine(i int) *model.Machine {
	disks := make([]model.Disk, 4)
	for d := range disks {
		disks[d] = model.Disk{Name: fmt.Sprintf("nvme%dn1", d), SizeBytes: 3_840_755_982_336, Model: "SAMSUNG MZQL23T8HCLS-00A07", Serial: fmt.Sprintf("S64HNE0T%06d%d", i, d)}
	}
	return &model.Machine{
		HardwareAddrs: []string{benchMAC(i), fmt.Sprintf("52:55:%02x:%02x:%02x:%02x", byte(i>>24), byte(i>>16), byte(i>>8), byte(i))},
		Address:       fmt.Sprintf("10.%d.%d.%d", byte(i>>16), byte(i>>8), byte(i)),
		Arch:          model.ArchAMD64,
		BootEnv:       "ubuntu-24.04-install",
		Profiles:      []string{"rack-a12", "storage-node"},
		Params: map[string]any{
			"hostname":    fmt.Sprintf("node-%06d", i),
			"ntp-servers": []string{"ntp1.example.net", "ntp2.example.net"},
			"root-disk":   "/dev/nvme0n1",
		},
		Inventory: &model.Inventory{
			SerialNumber: fmt.Sprintf("S%09d", i), SystemUUID: model.NewUUID(),
			Manufacturer: "Supermicro", ProductName: "AS -1115CS-TNR",
			CPUs: 64, CPUModel: "AMD EPYC 9354P 32-Core Processor", MemoryMiB: 524_288,
			Disks: disks,
			NICs: []model.NIC{
				{Name: "enp65s0f0", MAC: benchMAC(i), Driver: "ice", Speed: 25000},
				{Name: "enp65s0f1", Driver: "ice", Speed: 25000},
			},
		},
	}
}

// fixture returns the path of a store holding fixtureMachines machines,
// built once per test binary run (with NoSync: the load is not measured).
func fixture(b *testing.B) string {
	b.Helper()
	fixtureOnce.Do(func() {
		fixtureDir, fixtureErr = os.MkdirTemp("", "ironcast-bolt-bench-")
		if fixtureErr != nil {
			return
		}
		fixturePath = filepath.Join(fixtureDir, "100k.db")
		start := time.Now()
		fixtureErr = load(fixturePath, fixtureMachines)
		b.Logf("loaded %d machines in %v", fixtureMachines, time.Since(start).Round(time.Millisecond))
	})
	if fixtureErr != nil {
		b.Fatal(fixtureErr)
	}
	return fixturePath
}

func load(path string, n int) error {
	s, err := bolt.Open(path, &bolt.Options{NoSync: true})
	if err != nil {
		return err
	}
	defer s.Close()
	ctx := context.Background()
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range 500 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := store.Create(ctx, s, benchMachine(i)); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

// BenchmarkCreate measures durable creates (fsync on) of ~1 KiB machines
// through the typed helper, one writer at a time and with many concurrent
// writers sharing commits.
func BenchmarkCreate(b *testing.B) {
	size, _ := json.Marshal(benchMachine(1))
	tests := []struct {
		name    string
		writers int // 0: serial
		delay   time.Duration
	}{
		{name: "serial"},
		{name: "serial-delay10ms", delay: 10 * time.Millisecond},
		{name: "parallel-128", writers: 128},
		{name: "parallel-128-delay10ms", writers: 128, delay: 10 * time.Millisecond},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			s, err := bolt.Open(filepath.Join(b.TempDir(), "bench.db"), &bolt.Options{MaxBatchDelay: tt.delay})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			var next atomic.Int64
			b.Cleanup(func() { b.ReportMetric(float64(len(size)), "B/value") })
			b.ResetTimer()
			if tt.writers == 0 {
				for i := 0; b.Loop(); i++ {
					if err := store.Create(ctx, s, benchMachine(i)); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			b.SetParallelism(max(1, tt.writers/runtime.GOMAXPROCS(0)))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := store.Create(ctx, s, benchMachine(int(next.Add(1)))); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkGetByMAC looks machines up by MAC among 100,000 and decodes them.
func BenchmarkGetByMAC(b *testing.B) {
	s, err := bolt.Open(fixture(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	for b.Loop() {
		mac := benchMAC(r.IntN(fixtureMachines))
		m, err := store.LookupBy[model.Machine](ctx, s, "mac", mac)
		if err != nil {
			b.Fatal(err)
		}
		if !m.HasMAC(mac) {
			b.Fatalf("lookup %s returned %v", mac, m.HardwareAddrs)
		}
	}
}

// BenchmarkList100k lists and decodes all 100,000 machines. It also
// reports the file size and the process's memory after the last listing.
func BenchmarkList100k(b *testing.B) {
	path := fixture(b)
	s, err := bolt.Open(path, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var ms []*model.Machine
	b.ResetTimer()
	for b.Loop() {
		ms, err = store.List[model.Machine](ctx, s)
		if err != nil {
			b.Fatal(err)
		}
		if len(ms) != fixtureMachines {
			b.Fatalf("listed %d machines", len(ms))
		}
	}
	b.StopTimer()
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(fi.Size())/(1<<20), "file-MiB")
	st := procStatus(b) // before the GC below: RSS as the listing left it
	b.ReportMetric(float64(st["VmRSS"])/1024, "rss-MiB")
	b.ReportMetric(float64(st["RssAnon"])/1024, "rss-anon-MiB")
	b.ReportMetric(float64(st["RssFile"])/1024, "rss-file-MiB")
	runtime.GC() // HeapAlloc: what the listed machines keep alive
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	b.ReportMetric(float64(mem.HeapAlloc)/(1<<20), "heap-MiB")
	runtime.KeepAlive(ms)
}

// procStatus reads the kB fields of /proc/self/status.
func procStatus(b *testing.B) map[string]int64 {
	b.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Skipf("no /proc: %v", err)
	}
	defer f.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			out[k] = n
		}
	}
	return out
}
