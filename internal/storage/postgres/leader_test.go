package postgres

import (
	"context"
	"testing"

	"github.com/keyward/keyward/internal/storage/postgres/pgtest"
)

func TestLeaderIsUniqueAndTakesOver(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Start(t).NewDatabase(t)
	a, err := Open(ctx, Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	la, lb := a.NewLeader(LeaderLockKey), b.NewLeader(LeaderLockKey)
	if ok, err := la.Lead(ctx); !ok || err != nil {
		t.Fatalf("first node: %v %v", ok, err)
	}
	for range 3 {
		if ok, err := lb.Lead(ctx); ok || err != nil {
			t.Fatalf("second node led while the first holds the lock: %v %v", ok, err)
		}
		if ok, _ := la.Lead(ctx); !ok {
			t.Fatal("the leader lost the lock")
		}
	}
	// The leader's session dies (as when its process is killed).
	la.mu.Lock()
	la.conn.PgConn().Conn().Close()
	la.mu.Unlock()
	ok, err := lb.Lead(ctx)
	for i := 0; !ok && i < 50 && err == nil; i++ { // the server notices the dead session
		ok, err = lb.Lead(ctx)
	}
	if !ok || err != nil {
		t.Fatalf("second node did not take over: %v %v", ok, err)
	}
	if ok, _ := la.Lead(ctx); ok {
		t.Fatal("two leaders")
	}
	lb.Resign()
	if ok, _ := la.Lead(ctx); !ok {
		t.Fatal("no takeover after resign")
	}
	la.Resign()
}
