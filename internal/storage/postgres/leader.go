package postgres

import (
	"context"
	"sync"

	"github.com/jackc/pgx/v5"
)

// Leader elects one node among those sharing a database to run background
// jobs. It holds a session-level advisory lock on a connection of its own:
// while that session lives, no other node's Lead returns true; when the
// node dies (or its connection does), PostgreSQL releases the lock and the
// next Lead call on another node takes it over.
//
// Leadership only decides who looks for due work. The jobs themselves are
// transactional and check their precondition in the transaction that does
// the work, so a job that two nodes ran during a takeover still happens
// once.
type Leader struct {
	dsn string
	key int64

	mu   sync.Mutex
	conn *pgx.Conn // non-nil while holding the lock
}

// LeaderLockKey is the advisory lock key background jobs use ("keyward"
// plus the byte 'j').
const LeaderLockKey int64 = 0x6b6579776172_646a

// NewLeader returns a Leader for the database of b.
func (b *Backend) NewLeader(key int64) *Leader {
	return &Leader{dsn: b.pool.Config().ConnConfig.ConnString(), key: key}
}

// Lead reports whether this node holds the lock, trying to take it when it
// does not. A lost connection means lost leadership.
func (l *Leader) Lead(ctx context.Context) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		if err := l.conn.Ping(ctx); err == nil {
			return true, nil
		}
		l.conn.Close(context.Background())
		l.conn = nil
	}
	conn, err := pgx.Connect(ctx, l.dsn)
	if err != nil {
		return false, wrap(ctx, "leader connect", err)
	}
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, l.key).Scan(&got); err != nil {
		conn.Close(context.Background())
		return false, wrap(ctx, "leader lock", err)
	}
	if !got {
		conn.Close(context.Background())
		return false, nil
	}
	l.conn = conn
	return true, nil
}

// Resign releases leadership (on shutdown).
func (l *Leader) Resign() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		l.conn.Close(context.Background()) // ends the session, releasing the lock
		l.conn = nil
	}
}
