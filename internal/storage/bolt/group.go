package bolt

import (
	"errors"
	"fmt"
	"sync"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/keyward/keyward/internal/storage"
)

// groupCommit runs concurrent Updates in shared transactions.
//
// An Update queues its function and waits. When no commit is running, it
// starts a committer goroutine, which takes everything queued (up to
// maxBatch), runs the functions one after another in one bbolt transaction
// and commits it, and goes on with whatever was queued meanwhile: under
// load each commit carries every write that arrived during the previous
// one. bbolt's DB.Batch instead closes each batch when its own timer fires
// and queues it behind the commit in progress, so a batch never holds more
// than one delay's worth of writes however slow the disk, and several small
// batches wait for the lock, each paying for its own fsync.
//
// Before a commit the committer may wait, at most until the oldest queued
// Update has waited delay, for as many Updates as there were writers last
// time (the previous batch plus those that queued during its commit): the
// callers of a commit that just finished come back with their next write a
// little later, and without the wait they would trickle into alternating
// small and large batches. A lone writer never waits.
//
// When a function fails, the transaction is rolled back, that function is
// re-run alone in its caller's goroutine (so its error, or panic, is its
// own) and the rest of the batch is re-run together: the same contract as
// DB.Batch, which the package documentation states.
type groupCommit struct {
	db       *bbolt.DB
	maxBatch int
	delay    time.Duration

	mu      sync.Mutex
	queue   []*call
	running bool
	writers int           // writers seen in the last cycle: the batch to wait for
	want    int           // > 0 while the committer waits for that many queued
	wake    chan struct{} // tells the waiting committer that want is reached
}

// call is one queued Update.
type call struct {
	fn     func(storage.Tx) error
	queued time.Time
	done   chan error // receives nil, a commit error, or errTrySolo
}

// errTrySolo tells an Update to run its function again on its own.
var errTrySolo = errors.New("bolt: run solo")

func (g *groupCommit) update(fn func(storage.Tx) error) error {
	c := &call{fn: fn, queued: time.Now(), done: make(chan error, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	if !g.running {
		g.running = true
		go g.commitLoop()
	} else if g.want > 0 && len(g.queue) >= g.want {
		g.want = 0
		select {
		case g.wake <- struct{}{}:
		default:
		}
	}
	g.mu.Unlock()
	err := <-c.done
	if err == errTrySolo {
		return g.solo(fn)
	}
	return err
}

// commitLoop commits batches until the queue is empty.
func (g *groupCommit) commitLoop() {
	var timer *time.Timer
	for {
		g.mu.Lock()
		if want := min(g.writers, g.maxBatch); len(g.queue) > 0 && len(g.queue) < want {
			if wait := g.delay - time.Since(g.queue[0].queued); wait > 0 {
				g.want = want
				select { // a stale wake-up from an earlier wait
				case <-g.wake:
				default:
				}
				g.mu.Unlock()
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				select {
				case <-g.wake:
					timer.Stop()
				case <-timer.C:
				}
				g.mu.Lock()
				g.want = 0
			}
		}
		n := min(len(g.queue), g.maxBatch)
		if n == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		batch := make([]*call, n)
		copy(batch, g.queue)
		g.queue = append(g.queue[:0], g.queue[n:]...)
		g.mu.Unlock()
		g.run(batch)
		g.mu.Lock()
		g.writers = n + len(g.queue)
		g.mu.Unlock()
	}
}

// run commits batch, taking out and re-running solo any function that fails.
func (g *groupCommit) run(batch []*call) {
	for len(batch) > 0 {
		failed := -1
		err := g.db.Update(func(btx *bbolt.Tx) error {
			bk := btx.Bucket(bucket)
			if bk == nil {
				return errNoBucket
			}
			t := &tx{bk: bk, writable: true}
			for i, c := range batch {
				if err := safeCall(c.fn, t); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed >= 0 {
			batch[failed].done <- errTrySolo
			batch = append(batch[:failed], batch[failed+1:]...)
			continue
		}
		if err != nil {
			err = fmt.Errorf("bolt: commit: %w", err)
		}
		for _, c := range batch {
			c.done <- err
		}
		return
	}
}

// solo runs fn in a transaction of its own: its error is returned as it
// is, a failed commit as "bolt: commit".
func (g *groupCommit) solo(fn func(storage.Tx) error) error {
	var fnErr error
	err := g.db.Update(func(btx *bbolt.Tx) error {
		bk := btx.Bucket(bucket)
		if bk == nil {
			return errNoBucket
		}
		fnErr = fn(&tx{bk: bk, writable: true})
		return fnErr
	})
	if err != nil && err != fnErr {
		return fmt.Errorf("bolt: commit: %w", err)
	}
	return err
}

// safeCall runs fn, turning a panic into an error so that the batch is
// rolled back and fn re-run solo, where the panic happens in its caller.
func safeCall(fn func(storage.Tx) error, t *tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("bolt: panic in update: %v", p)
		}
	}()
	return fn(t)
}
