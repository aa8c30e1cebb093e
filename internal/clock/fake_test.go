package clock

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func received(c <-chan time.Time) (time.Time, bool) {
	select {
	case v := <-c:
		return v, true
	default:
		return time.Time{}, false
	}
}

func TestFakeTimerFiresWhenAdvancedPastDeadline(t *testing.T) {
	f := NewFake(t0)
	tm := f.NewTimer(time.Hour)
	f.Advance(59 * time.Minute)
	if _, ok := received(tm.C()); ok {
		t.Fatal("fired before its deadline")
	}
	f.Advance(time.Minute)
	if v, ok := received(tm.C()); !ok || !v.Equal(t0.Add(time.Hour)) {
		t.Fatalf("at the deadline: %v %v", v, ok)
	}
	f.Advance(time.Hour)
	if _, ok := received(tm.C()); ok {
		t.Fatal("a timer fires once")
	}
	if f.Waiters() != 0 {
		t.Fatalf("%d waiters after the timer fired", f.Waiters())
	}
	// Reset arms it again from the current time.
	if tm.Reset(time.Minute) {
		t.Fatal("Reset of a fired timer reports it was pending")
	}
	f.Advance(time.Minute)
	if _, ok := received(tm.C()); !ok {
		t.Fatal("reset timer did not fire")
	}
}

func TestFakeTimerStop(t *testing.T) {
	f := NewFake(t0)
	tm := f.NewTimer(time.Minute)
	if !tm.Stop() {
		t.Fatal("Stop of a pending timer reports false")
	}
	f.Advance(time.Hour)
	if _, ok := received(tm.C()); ok {
		t.Fatal("stopped timer fired")
	}
	if tm.Stop() {
		t.Fatal("second Stop reports true")
	}
	// A fired but unreceived value is discarded by Stop (Go 1.23 timers).
	tm.Reset(time.Minute)
	f.Advance(time.Minute)
	tm.Stop()
	if _, ok := received(tm.C()); ok {
		t.Fatal("stale value after Stop")
	}
}

func TestFakeTickerDropsTicksLikeTimeTicker(t *testing.T) {
	f := NewFake(t0)
	tk := f.NewTicker(10 * time.Second)
	f.Advance(5 * time.Second)
	if _, ok := received(tk.C()); ok {
		t.Fatal("ticked early")
	}
	f.Advance(5 * time.Second)
	if _, ok := received(tk.C()); !ok {
		t.Fatal("no tick at 10s")
	}
	// A jump over many periods delivers one tick (the buffer holds one),
	// and the next comes a period after the jump's last multiple.
	f.Advance(95 * time.Second) // t = 105s
	if _, ok := received(tk.C()); !ok {
		t.Fatal("no tick after the jump")
	}
	if _, ok := received(tk.C()); ok {
		t.Fatal("more than one tick buffered")
	}
	f.Advance(4 * time.Second) // 109s
	if _, ok := received(tk.C()); ok {
		t.Fatal("ticked before 110s")
	}
	f.Advance(time.Second) // 110s
	if _, ok := received(tk.C()); !ok {
		t.Fatal("no tick at 110s")
	}
	tk.Reset(time.Minute)
	f.Advance(30 * time.Second)
	if _, ok := received(tk.C()); ok {
		t.Fatal("ticked before the new period")
	}
	f.Advance(30 * time.Second)
	if _, ok := received(tk.C()); !ok {
		t.Fatal("no tick after Reset's period")
	}
	tk.Stop()
	f.Advance(time.Hour)
	if _, ok := received(tk.C()); ok {
		t.Fatal("stopped ticker ticked")
	}
}

func TestFakeBackwardsAndSet(t *testing.T) {
	f := NewFake(t0)
	tm := f.NewTimer(time.Hour)
	f.Advance(-time.Hour)
	if _, ok := received(tm.C()); ok {
		t.Fatal("moving back fired a timer")
	}
	// The deadline stays t0+1h of fake time: Set to it fires.
	f.Set(t0.Add(time.Hour - time.Second))
	if _, ok := received(tm.C()); ok {
		t.Fatal("fired a second before its deadline")
	}
	f.Set(t0.Add(time.Hour))
	if _, ok := received(tm.C()); !ok {
		t.Fatal("Set to the deadline did not fire")
	}
}

func TestRealTimerAndTicker(t *testing.T) {
	var c Clock = Real{}
	tm := c.NewTimer(time.Millisecond)
	<-tm.C()
	tk := c.NewTicker(time.Millisecond)
	<-tk.C()
	tk.Stop()
}
