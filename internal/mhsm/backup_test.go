package mhsm

import (
	"context"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/errs"
	"github.com/keyward/keyward/internal/storage/mem"
	"github.com/keyward/keyward/internal/vault"
)

// twoNodes is two pool services over one barrier: two HA nodes, or one
// node before and after a restart.
func twoNodes(t *testing.T) (a, b *Service, p *Pool, clk *clock.Fake) {
	t.Helper()
	ctx := context.Background()
	clk = clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	bar := barrier.New(mem.New())
	shares, err := bar.Initialize(ctx, barrier.SealConfig{Type: "dev", Shares: 1, Threshold: 1}, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bar.Unseal(ctx, shares[0]); err != nil {
		t.Fatal(err)
	}
	a = New(bar, vault.New(bar, clk, vault.Deps{}), clk)
	p, err = a.Create(ctx, Pool{Name: "pool1", TenantID: "11111111-1111-1111-1111-111111111111", InitialAdmins: []string{"admin"}})
	if err != nil {
		t.Fatal(err)
	}
	b = New(bar, vault.New(bar, clk, vault.Deps{}), clk)
	if err := b.Load(ctx); err != nil {
		t.Fatal(err)
	}
	return a, b, p, clk
}

func TestJobsAreStored(t *testing.T) {
	ctx := context.Background()
	a, b, p, clk := twoNodes(t)
	j, err := a.start(ctx, p, JobBackup)
	if err != nil {
		t.Fatal(err)
	}
	// The other node sees the running job and the pool's lock.
	got, err := b.Job(ctx, p, j.ID)
	if err != nil || got.Status != InProgress || got.Kind != JobBackup || !got.Start.Equal(j.Start) {
		t.Fatalf("job on the other node: %+v %v", got, err)
	}
	if _, err := b.start(ctx, p, JobRestore); errs.KindOf(err) != errs.Conflict {
		t.Fatalf("a second job on the other node: %v", err)
	}
	clk.Advance(3 * time.Second)
	a.finish(p, j, "The backup completed.", "https://acct.blob/c/mhsm-pool1-x", nil)
	got, err = b.Job(ctx, p, j.ID)
	if err != nil || got.Status != Succeeded || got.ContainerURI != "https://acct.blob/c/mhsm-pool1-x" || got.End.Sub(got.Start) != 3*time.Second {
		t.Fatalf("finished job on the other node: %+v %v", got, err)
	}
	// The lock is released for every node; a failed job keeps its code.
	j2, err := b.start(ctx, p, JobRestore)
	if err != nil {
		t.Fatalf("a job after the first ended: %v", err)
	}
	b.finish(p, j2, "", "", fail(errs.BadParameter, "InvalidBackup", "no"))
	if got, _ := a.Job(ctx, p, j2.ID); got.Status != Failed || got.ErrCode != "InvalidBackup" {
		t.Fatalf("failed job: %+v", got)
	}
	// Unknown ids and another pool's jobs are not found.
	if _, err := a.Job(ctx, p, "nope"); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("unknown job: %v", err)
	}
	other, err := a.Create(ctx, Pool{Name: "pool2", TenantID: p.TenantID, InitialAdmins: []string{"admin"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Job(ctx, other, j.ID); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("another pool's job: %v", err)
	}
}

// A job whose node stopped is reported failed once it can no longer end,
// and stops blocking the pool then (not before).
func TestAbandonedJob(t *testing.T) {
	ctx := context.Background()
	a, b, p, clk := twoNodes(t)
	j, err := a.start(ctx, p, JobRestore)
	if err != nil {
		t.Fatal(err)
	}
	// Node a stops here: finish never runs.
	clk.Advance(jobLimit)
	if got, _ := b.Job(ctx, p, j.ID); got.Status != InProgress {
		t.Fatalf("job within its limit: %+v", got)
	}
	if _, err := b.start(ctx, p, JobBackup); errs.KindOf(err) != errs.Conflict {
		t.Fatalf("a job while another may still run: %v", err)
	}
	clk.Advance(jobGrace)
	got, err := b.Job(ctx, p, j.ID)
	if err != nil || got.Status != Failed || got.ErrCode != "JobAbandoned" || got.End.IsZero() {
		t.Fatalf("abandoned job: %+v %v", got, err)
	}
	j2, err := b.start(ctx, p, JobBackup)
	if err != nil {
		t.Fatalf("a job after the abandoned one: %v", err)
	}
	if got, _ := a.Job(ctx, p, j.ID); got.Status != Failed {
		t.Fatalf("abandoned job after the next started: %+v", got)
	}
	if got, _ := a.Job(ctx, p, j2.ID); got.Status != InProgress {
		t.Fatalf("new job: %+v", got)
	}
}

// Ended jobs are kept for jobKeep, then removed when a job starts.
func TestOldJobsPruned(t *testing.T) {
	ctx := context.Background()
	a, _, p, clk := twoNodes(t)
	old, err := a.start(ctx, p, JobBackup)
	if err != nil {
		t.Fatal(err)
	}
	a.finish(p, old, "done", "u", nil)
	clk.Advance(jobKeep - time.Hour)
	recent, err := a.start(ctx, p, JobBackup)
	if err != nil {
		t.Fatal(err)
	}
	a.finish(p, recent, "done", "u", nil)
	if _, err := a.Job(ctx, p, old.ID); err != nil {
		t.Fatalf("a job within its keep time was removed: %v", err)
	}
	clk.Advance(2 * time.Hour)
	next, err := a.start(ctx, p, JobRestore)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Job(ctx, p, old.ID); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("a job past its keep time: %v", err)
	}
	for _, id := range []string{recent.ID, next.ID} {
		if _, err := a.Job(ctx, p, id); err != nil {
			t.Fatalf("job %s: %v", id, err)
		}
	}
}
