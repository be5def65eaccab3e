// Command apibench measures a running ironcast server's API: the time to
// list every machine, get-by-MAC latency and rate, and create rate, with
// the server's RSS after each phase. It expects machines seeded by
// ../seed (MACs 52:54:XX:XX:XX:01).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	endpoint := flag.String("endpoint", "", "API endpoint")
	ca := flag.String("ca", "", "CA certificate")
	pwFile := flag.String("password-file", "", "admin password file")
	n := flag.Int("n", 0, "machines seeded")
	reps := flag.Int("reps", 3, "repetitions of the full list")
	pid := flag.Int("pid", 0, "server PID for RSS")
	flag.Parse()
	if err := run(*endpoint, *ca, *pwFile, *n, *reps, *pid); err != nil {
		fmt.Fprintln(os.Stderr, "apibench:", err)
		os.Exit(1)
	}
}

type bench struct {
	base  string
	token string
	hc    *http.Client
	pid   int
}

func run(endpoint, ca, pwFile string, n, reps, pid int) error {
	pem, err := os.ReadFile(ca)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 64}}
	pw, err := os.ReadFile(pwFile)
	if err != nil {
		return err
	}
	req, _ := http.NewRequest("POST", endpoint+"/api/v1/users/admin/token", strings.NewReader(`{"TTL":"1h"}`))
	req.SetBasicAuth("admin", strings.TrimSpace(string(pw)))
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	var tok struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if tok.Token == "" {
		return fmt.Errorf("no token (status %d)", resp.StatusCode)
	}
	b := &bench{base: endpoint + "/api/v1", token: tok.Token, hc: hc, pid: pid}

	// Full list.
	var times []time.Duration
	for r := range reps {
		start := time.Now()
		total, body, err := b.get("/machines")
		if err != nil {
			return err
		}
		d := time.Since(start)
		times = append(times, d)
		if total != n {
			return fmt.Errorf("list: X-Total-Count %d, want %d", total, n)
		}
		if r == 0 {
			var items []json.RawMessage
			if err := json.Unmarshal(body, &items); err != nil || len(items) != n {
				return fmt.Errorf("list: decoded %d items (%v), want %d", len(items), err, n)
			}
		}
		fmt.Printf("list all %d machines: %.3f s, %.1f MiB\n", n, d.Seconds(), float64(len(body))/(1<<20))
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	fmt.Printf("list all: median %.3f s over %d runs; server RSS %s MiB\n", times[len(times)/2].Seconds(), reps, b.rss())

	// Lists no index answers: every machine is decoded and tested. A
	// filter (rack 17 holds machines 680-719) and a sort, checked.
	rack17 := min(40, max(0, n-680))
	for _, q := range []struct {
		path  string
		total int
		first string // Name of the first item, if any
	}{
		{"/machines?param.rack=17", rack17, ""},
		{"/machines?sort=Name&reverse=true&limit=10", n, fmt.Sprintf("node-%06d", n-1)},
	} {
		var times []time.Duration
		for range reps {
			start := time.Now()
			total, body, err := b.get(q.path)
			if err != nil {
				return err
			}
			times = append(times, time.Since(start))
			if total != q.total {
				return fmt.Errorf("%s: X-Total-Count %d, want %d", q.path, total, q.total)
			}
			var items []struct{ Name string }
			if err := json.Unmarshal(body, &items); err != nil {
				return fmt.Errorf("%s: %w", q.path, err)
			}
			if q.first != "" && (len(items) == 0 || items[0].Name != q.first) {
				return fmt.Errorf("%s: first item %v, want %s", q.path, items, q.first)
			}
		}
		sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
		fmt.Printf("list %s: median %.3f s over %d runs; server peak RSS so far %s MiB\n", strings.TrimPrefix(q.path, "/machines"), times[len(times)/2].Seconds(), reps, b.status("VmHWM"))
	}

	// Get by MAC: sequential latency, then 16 in parallel.
	const lookups = 2000
	macs := make([]string, lookups)
	for i := range macs {
		j := rand.IntN(max(n, 1))
		macs[i] = fmt.Sprintf("52:54:%02x:%02x:%02x:01", j>>16&0xff, j>>8&0xff, j&0xff)
	}
	start := time.Now()
	for _, mac := range macs[:500] {
		total, _, err := b.get("/machines?HardwareAddrs=" + mac)
		if err != nil || total != 1 {
			return fmt.Errorf("get by MAC %s: %d matches (%v)", mac, total, err)
		}
	}
	seq := time.Since(start) / 500
	rate, err := b.parallel(16, macs, func(mac string) error {
		total, _, err := b.get("/machines?HardwareAddrs=" + mac)
		if err == nil && total != 1 {
			err = fmt.Errorf("get by MAC %s: %d matches", mac, total)
		}
		return err
	})
	if err != nil {
		return err
	}
	fmt.Printf("get by MAC: %.2f ms sequential, %.0f/s with 16 clients\n", float64(seq.Microseconds())/1000, rate)

	// Creates.
	const creates = 2000
	names := make([]string, creates)
	for i := range names {
		names[i] = fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i)
	}
	var seqN atomic.Int64
	rate, err = b.parallel(32, names, func(name string) error {
		i := seqN.Add(1)
		body := fmt.Sprintf(`{"Name":%q,"HardwareAddrs":["02:00:%02x:%02x:%02x:%02x"]}`, name, i>>24&0xff, i>>16&0xff, i>>8&0xff, i&0xff)
		req, _ := http.NewRequest("POST", b.base+"/machines", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+b.token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := b.hc.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 201 {
			return fmt.Errorf("create: status %d", resp.StatusCode)
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Printf("create (durable, 32 clients): %.0f/s; server RSS %s MiB\n", rate, b.rss())
	return nil
}

func (b *bench) get(path string) (int, []byte, error) {
	req, _ := http.NewRequest("GET", b.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+b.token)
	resp, err := b.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	if resp.StatusCode != 200 {
		return 0, nil, fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	total, _ := strconv.Atoi(resp.Header.Get("X-Total-Count"))
	return total, body, nil
}

func (b *bench) parallel(workers int, items []string, fn func(string) error) (float64, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(len(items)) || firstErr.Load() != nil {
					return
				}
				if err := fn(items[i]); err != nil {
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return 0, e.(error)
	}
	return float64(len(items)) / time.Since(start).Seconds(), nil
}

func (b *bench) rss() string { return b.status("VmRSS") }

// status reads a kB field of the server's /proc status in MiB.
func (b *bench) status(field string) string {
	if b.pid == 0 {
		return "?"
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", b.pid))
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, field+":") {
			f := strings.Fields(line)
			kb, _ := strconv.Atoi(f[1])
			return strconv.Itoa(kb / 1024)
		}
	}
	return "?"
}

var _ = context.Background
