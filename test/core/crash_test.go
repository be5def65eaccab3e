package core

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ironcast/ironcast/api/client"
)

// TestKillDuringCreates sends 1000 concurrent creates, kills the server
// with SIGKILL part way, restarts it and checks that every create that was
// answered 2xx is there and that the store opens cleanly.
func TestKillDuringCreates(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	s.start()
	tok, err := s.client().Token(ctx, "admin", s.password(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pem := s.caPEM()
	c, err := client.New(s.url(""), client.WithCACert(pem), client.WithToken(tok.Token))
	if err != nil {
		t.Fatal(err)
	}
	const total, workers = 1000, 64
	var (
		mu       sync.Mutex
		acked    = map[string]string{} // name → UUID
		answered atomic.Int64
		next     atomic.Int64
		wg       sync.WaitGroup
	)
	killed := make(chan struct{})
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				name := fmt.Sprintf("crash-%04d", i)
				raw, err := c.Create(ctx, "machines", map[string]any{
					"Name": name, "HardwareAddrs": []string{fmt.Sprintf("52:54:00:aa:%02x:%02x", i/256, i%256)},
				})
				if err != nil {
					continue // refused or cut off by the kill: not acknowledged
				}
				var m struct{ UUID string }
				if json.Unmarshal(raw, &m) != nil || m.UUID == "" {
					t.Errorf("create %s answered 2xx without a UUID: %s", name, raw)
					continue
				}
				mu.Lock()
				acked[name] = m.UUID
				mu.Unlock()
				if answered.Add(1) == 300 {
					close(killed)
				}
			}
		}()
	}
	select {
	case <-killed:
	case <-time.After(2 * time.Minute):
		t.Fatal("300 creates were not answered within 2 minutes")
	}
	s.kill()
	wg.Wait()
	mu.Lock()
	n := len(acked)
	mu.Unlock()
	if n >= total {
		t.Fatalf("all %d creates finished before the kill; the test proved nothing", n)
	}
	t.Logf("%d creates acknowledged before SIGKILL", n)

	s.start()
	list, count, err := s.client().List(ctx, "machines", nil)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]string{}
	for _, raw := range list {
		var m struct{ UUID, Name string }
		json.Unmarshal(raw, &m)
		have[m.Name] = m.UUID
	}
	if count != len(list) {
		t.Errorf("X-Total-Count %d, listed %d", count, len(list))
	}
	for name, uuid := range acked {
		if have[name] != uuid {
			t.Errorf("acknowledged create %s (%s) is missing after restart (found %q)", name, uuid, have[name])
		}
	}
}
