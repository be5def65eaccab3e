package ipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/store"
)

// commit is a set of lease writes on their way to the store. It finishes
// once every lease it names has been written, by this commit's batch or a
// later one, with the joined errors.
type commit struct {
	ls []*lease

	mu       sync.Mutex
	finished bool
	err      error
	cb       func(error)
}

// then calls cb with the commit's result: at once (in the caller's
// goroutine) if it has finished, else from the writer when it does.
// It is called at most once per commit.
func (c *commit) then(cb func(error)) {
	c.mu.Lock()
	if c.finished {
		err := c.err
		c.mu.Unlock()
		cb(err)
		return
	}
	c.cb = cb
	c.mu.Unlock()
}

func (c *commit) finish(err error) {
	c.mu.Lock()
	c.finished, c.err = true, err
	cb := c.cb
	c.cb = nil
	c.mu.Unlock()
	if cb != nil {
		cb(err)
	}
}

// wait blocks until c has finished or ctx ends. When ctx ends first the
// write still completes; only the wait is abandoned.
func (c *commit) wait(ctx context.Context) error {
	ch := make(chan error, 1)
	c.then(func(err error) { ch <- err })
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return fmt.Errorf("wait for lease write: %w", ctx.Err())
	}
}

// write queues the current state of ls for the store and returns the
// commit to wait on. Each lease's version is bumped: the write that
// carries this version (or a later one) satisfies the commit. a.mu is
// held.
func (a *Allocator) write(ls ...*lease) *commit {
	return a.queue(false, ls)
}

// writeBehind queues ls like write for a change no reply waits for (an
// offer): the writer may hold it back up to CommitInterval, so that the
// REQUEST that usually follows within milliseconds shares its commit.
// a.mu is held.
func (a *Allocator) writeBehind(ls ...*lease) {
	a.queue(true, ls)
}

// roundWrites is the number of queued writes that someone waits on (ACKs
// and the like) that starts a round before CommitInterval has passed: it
// bounds the ACKs that leave together at the end of a round, a burst that
// a client or relay has to absorb. Written-behind offers do not count:
// they send nothing when their round ends, and counting them started
// rounds twice as often for new clients (an offer and an ACK write each)
// as for returning ones (an ACK only), for the same ACK bursts.
const roundWrites = 32

func (a *Allocator) queue(behind bool, ls []*lease) *commit {
	c := &commit{ls: ls}
	for _, l := range ls {
		l.ver++
	}
	a.wmu.Lock()
	if len(a.pending) == 0 {
		a.firstQueued = time.Now()
	}
	a.pending = append(a.pending, c)
	if !behind {
		a.waited++
	}
	start := !a.flushing
	a.flushing = true
	// Wake a writer that sleeps: at roundWrites, or for the first write
	// someone waits on, which a queue of offers alone sleeps longer for.
	wake := !behind && (a.waited == roundWrites || a.waited == 1)
	a.wmu.Unlock()
	if start {
		go a.flush()
	} else if wake {
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}
	return c
}

// flush is the group-commit writer: it takes every commit queued so far,
// writes each lease they name once (its state at that moment), waits
// until the store has made all of them durable, finishes the commits, and
// starts over with what queued meanwhile. It runs while there is work
// and exits when the queue is empty. A store that groups concurrent
// writes into one transaction (store/bolt's Batch) turns each round into
// one commit.
//
// Rounds start at most once per CommitInterval, or earlier once
// roundWrites awaited writes are queued: the writer sleeps out the rest of the
// interval before it takes the queue, so that under load each commit
// carries more leases. A queue of write-behind changes alone (offers)
// waits until its oldest is CommitInterval old. Times are wall-clock, not
// cfg.Now, which tests stop.
func (a *Allocator) flush() {
	var t *time.Timer
	for {
		a.wmu.Lock()
		wait := time.Until(a.lastRound.Add(a.cfg.CommitInterval))
		if a.waited == 0 {
			wait = max(wait, time.Until(a.firstQueued.Add(a.cfg.CommitInterval)))
		}
		if a.waited >= roundWrites {
			wait = 0
		}
		if wait > 0 && len(a.pending) > 0 {
			a.wmu.Unlock()
			if t == nil {
				t = time.NewTimer(wait)
			} else {
				t.Reset(wait)
			}
			select {
			case <-t.C:
			case <-a.wake:
				t.Stop()
			}
			continue
		}
		batch := a.pending
		a.pending, a.waited = nil, 0
		if len(batch) == 0 {
			a.flushing = false
			a.wmu.Unlock()
			return
		}
		a.lastRound = time.Now()
		a.wmu.Unlock()
		a.writeBatch(batch)
	}
}

// snap is one lease write: the state written and the version it carries.
type snap struct {
	l   *lease
	ver uint64
	// saved is l's state as written; ml its record.
	saved saved
	ml    model.Lease
	err   error
}

func (a *Allocator) writeBatch(batch []*commit) {
	now := a.cfg.Now()
	seen := map[*lease]*snap{}
	var snaps []*snap
	a.mu.Lock()
	for _, c := range batch {
		for _, l := range c.ls {
			if seen[l] != nil {
				continue
			}
			s := &snap{l: l, ver: l.ver, saved: saved{mac: l.mac, state: l.state, expire: l.expire}, ml: a.model(l, now)}
			if a.leases[l.addr] != l {
				// Deleted through the API meanwhile: do not bring it back.
				s.err = fmt.Errorf("lease %s was deleted", s.ml.Addr)
			}
			seen[l] = s
			snaps = append(snaps, s)
		}
	}
	a.mu.Unlock()

	// One PutBatch: every lease of the round in one durable commit.
	ctx := context.Background() // a write whose memory state changed must complete
	ops := make([]store.PutOp, 0, len(snaps))
	opSnap := make([]*snap, 0, len(snaps))
	buf := make([]byte, 0, 256*len(snaps)) // one allocation for every encoding
	for _, s := range snaps {
		if s.err != nil {
			continue
		}
		start := len(buf)
		b, ok := appendLeaseJSON(buf, &s.ml)
		if !ok {
			j, err := json.Marshal(&s.ml)
			if err != nil {
				s.err = fmt.Errorf("encode lease %s: %w", s.ml.Addr, err)
				continue
			}
			b = append(buf[:start], j...)
		}
		buf = b
		ops = append(ops, store.PutOp{Kind: model.KindLeases, Key: s.ml.Addr, Value: buf[start:len(buf):len(buf)], Want: store.AnyRevision})
		opSnap = append(opSnap, s)
	}
	if len(ops) > 0 {
		for i, err := range a.st.PutBatch(ctx, ops) {
			if err != nil {
				opSnap[i].err = fmt.Errorf("store lease %s: %w", opSnap[i].ml.Addr, err)
			}
		}
	}

	a.mu.Lock()
	a.rounds++
	a.writes += uint64(len(snaps))
	for _, s := range snaps {
		l := s.l
		if s.err == nil {
			l.stored, l.savedAt = true, a.rounds
			l.saved = s.saved
			if a.leases[l.addr] != l {
				continue // forgotten meanwhile: keep no hostname for it
			}
			if s.ml.Hostname != "" {
				a.savedHostnames[l.addr] = s.ml.Hostname
			} else {
				delete(a.savedHostnames, l.addr)
			}
			continue
		}
		a.log.Warn("lease write failed; lease reverted (an ACK waiting for it is dropped)", "addr", s.ml.Addr, "mac", s.ml.Token, "state", s.ml.State, "err", s.err)
		if l.ver != s.ver || a.leases[l.addr] != l {
			continue // changed since: a later write is queued for it
		}
		a.revert(l, stampOf(now))
	}
	a.mu.Unlock()
	for _, c := range batch {
		var errs []error
		for _, l := range c.ls {
			errs = append(errs, seen[l].err)
		}
		c.finish(errors.Join(errs...))
	}
}

// revert puts l back to the state the store holds after a failed write,
// so that memory never claims a binding (or hold) the store does not have.
// A lease never stored becomes a lapsed offer, which the sweep drops. a.mu is
// held.
func (a *Allocator) revert(l *lease, now stamp) {
	if !l.stored {
		l.state, l.expire = stateOffered, now
		return
	}
	l.mac, l.state, l.expire = l.saved.mac, l.saved.state, l.saved.expire
	if h := a.savedHostnames[l.addr]; h != "" {
		a.hostnames[l.addr] = h
	} else {
		delete(a.hostnames, l.addr)
	}
}
