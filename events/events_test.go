package events

import (
	"sync"
	"testing"

	"github.com/ironcast/ironcast/model"
)

func TestBus(t *testing.T) {
	var b Bus
	all := b.Subscribe(10, nil)
	machines := b.Subscribe(10, func(ev model.Event) bool { return ev.Kind == model.KindMachines })
	small := b.Subscribe(1, nil)
	b.Publish(model.Event{Type: "created", Kind: model.KindMachines, Key: "a"})
	b.Publish(model.Event{Type: "created", Kind: model.KindLeases, Key: "10.0.0.1"})

	if got := len(all.C); got != 2 {
		t.Errorf("unfiltered subscriber got %d events, want 2", got)
	}
	if got := len(machines.C); got != 1 {
		t.Errorf("filtered subscriber got %d events, want 1", got)
	}
	if ev := <-machines.C; ev.Key != "a" || ev.Time.IsZero() {
		t.Errorf("event = %+v, want key a with a time", ev)
	}
	if small.Dropped() != 1 {
		t.Errorf("a full subscriber dropped %d, want 1 (and the publisher must not block)", small.Dropped())
	}
	all.Close()
	all.Close() // twice is fine
	if _, ok := <-all.C; !ok {
		t.Error("buffered events were lost on close")
	}
	b.Publish(model.Event{Type: "deleted"}) // must not panic on a closed subscriber
}

func TestBusConcurrent(t *testing.T) {
	var b Bus
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range 100 {
				b.Publish(model.Event{Type: "x"})
			}
		}()
		go func() {
			defer wg.Done()
			for range 20 {
				s := b.Subscribe(4, nil)
				s.Close()
			}
		}()
	}
	wg.Wait()
}
