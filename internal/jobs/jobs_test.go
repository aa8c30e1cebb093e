package jobs

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/clock"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// seen records the clock time of every run.
type seen struct {
	mu  sync.Mutex
	at  []time.Time
	clk clock.Clock
}

func (s *seen) run(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.at = append(s.at, s.clk.Now())
	return nil
}

func (s *seen) times() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.at...)
}

func TestAdvanceRunsTheJobAtTheNewTime(t *testing.T) {
	clk := clock.NewFake(t0)
	s := &seen{clk: clk}
	r := New(Config{Clock: clk}, Job{Name: "due", Every: time.Minute, Run: s.run})
	r.Start()
	defer r.Stop()
	ctx := ctxT(t)

	// Less than a period: no tick, so nothing ran.
	clk.Advance(30 * time.Second)
	if err := r.RunOnce(ctx, "due"); err != nil {
		t.Fatal(err)
	}
	// RunOnce ran it at the same moment; that is the only run so far.
	if got := s.times(); len(got) != 1 || !got[0].Equal(t0.Add(30*time.Second)) {
		t.Fatalf("runs %v", got)
	}
	clk.Advance(24 * time.Hour)
	if err := r.WaitRunSince(ctx, "due", clk.Now()); err != nil {
		t.Fatal(err)
	}
	got := s.times()
	if len(got) != 2 || !got[1].Equal(t0.Add(24*time.Hour+30*time.Second)) {
		t.Fatalf("after the advance: runs %v", got)
	}
	if r.Runs("due") != 2 {
		t.Fatalf("Runs = %d", r.Runs("due"))
	}
}

type leader struct {
	lead     atomic.Bool
	resigned atomic.Bool
}

func (l *leader) Lead(context.Context) (bool, error) { return l.lead.Load(), nil }
func (l *leader) Resign()                            { l.resigned.Store(true) }

func TestGatesReadyAndLeader(t *testing.T) {
	clk := clock.NewFake(t0)
	var ready atomic.Bool
	l := &leader{}
	all, lead := &seen{clk: clk}, &seen{clk: clk}
	r := New(Config{Clock: clk, Ready: ready.Load, Leader: l},
		Job{Name: "refresh", Every: time.Second, Run: all.run},
		Job{Name: "due", Every: time.Minute, LeaderOnly: true, Run: lead.run})
	r.Start()
	ctx := ctxT(t)

	// Sealed: nothing runs, and waiting for a run ends with the context.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	if err := r.RunOnce(short, "refresh"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("RunOnce while not ready: %v", err)
	}
	cancel()
	ready.Store(true)
	// Ready but not the leader: refresh runs, due does not.
	clk.Advance(time.Minute)
	if err := r.WaitRunSince(ctx, "refresh", clk.Now()); err != nil {
		t.Fatal(err)
	}
	short, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
	if err := r.RunOnce(short, "due"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("RunOnce of a leader job on a follower: %v", err)
	}
	cancel()
	if n := len(lead.times()); n != 0 {
		t.Fatalf("a follower ran a leader job %d times", n)
	}
	l.lead.Store(true)
	clk.Advance(time.Minute)
	if err := r.WaitRunSince(ctx, "due", clk.Now()); err != nil {
		t.Fatal(err)
	}
	r.Stop()
	if !l.resigned.Load() {
		t.Fatal("Stop did not resign")
	}
	if err := r.RunOnce(ctx, "due"); err == nil {
		t.Fatal("RunOnce after Stop succeeded")
	}
}

// A run in progress when the clock moves does not count as the run at the
// new time: WaitRunSince waits for the next one.
func TestWaitRunSinceSkipsARunStartedBefore(t *testing.T) {
	clk := clock.NewFake(t0)
	entered, release := make(chan time.Time, 4), make(chan struct{})
	r := New(Config{Clock: clk}, Job{Name: "slow", Every: time.Minute, Run: func(context.Context) error {
		entered <- clk.Now()
		<-release
		return nil
	}})
	r.Start()
	defer r.Stop()
	ctx := ctxT(t)
	clk.Advance(time.Minute)
	if at := <-entered; !at.Equal(t0.Add(time.Minute)) {
		t.Fatalf("first run at %v", at)
	}
	clk.Advance(time.Hour) // the tick waits in the ticker's buffer
	done := make(chan error, 1)
	go func() { done <- r.WaitRunSince(ctx, "slow", clk.Now()) }()
	release <- struct{}{} // the first run ends
	if at := <-entered; !at.Equal(t0.Add(time.Hour + time.Minute)) {
		t.Fatalf("second run at %v", at)
	}
	select {
	case err := <-done:
		t.Fatalf("WaitRunSince returned before the run at the new time finished: %v", err)
	default:
	}
	release <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

type memTx map[string][]byte

func (m memTx) keys() []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	for i := range ks { // tiny: insertion sort
		for j := i; j > 0 && ks[j] < ks[j-1]; j-- {
			ks[j], ks[j-1] = ks[j-1], ks[j]
		}
	}
	return ks
}

func (m memTx) Scan(prefix, after string, fn func(string, []byte) bool) error {
	for _, k := range m.keys() {
		if len(k) >= len(prefix) && k[:len(prefix)] == prefix && k > after && !fn(k, m[k]) {
			break
		}
	}
	return nil
}

func (m memTx) ScanKeys(prefix, after string, fn func(string) bool) error {
	return m.Scan(prefix, after, func(k string, _ []byte) bool { return fn(k) })
}

func TestDueQueue(t *testing.T) {
	tx := memTx{
		DueKey("q/", 100, "s/a"):  []byte("a"),
		DueKey("q/", 200, "k/b"):  []byte("b"),
		DueKey("q/", 200, "k/c"):  []byte("c"),
		DueKey("q/", 300, "s/d"):  []byte("d"),
		DueKey("r/", 0, "other"):  nil,
		DueKey("q/", -5, "s/neg"): []byte("n"),
	}
	if k := DueKey("q/", 7, "x/y"); k != "q/000000000007/x/y" {
		t.Fatalf("DueKey = %q", k)
	}
	got, err := DueKeys(tx, "q/", 200, 100)
	if err != nil {
		t.Fatal(err)
	}
	var rests []string
	for _, e := range got {
		rests = append(rests, e.Rest)
		if e.Value != nil {
			t.Fatal("DueKeys returned a value")
		}
	}
	if want := "[s/neg s/a k/b k/c]"; fmtList(rests) != want {
		t.Fatalf("due at 200: %v, want %s", rests, want)
	}
	if got[1].Due != 100 || got[1].Key != "q/000000000100/s/a" {
		t.Fatalf("entry %+v", got[1])
	}
	lim, _ := DueEntries(tx, "q/", 1000, 2)
	if len(lim) != 2 || string(lim[1].Value) != "a" {
		t.Fatalf("limit 2: %+v", lim)
	}
	none, _ := DueEntries(tx, "q/", 99, 10)
	if len(none) != 1 { // only the clamped negative one
		t.Fatalf("due at 99: %+v", none)
	}
}

func fmtList(s []string) string {
	out := "["
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out + "]"
}
