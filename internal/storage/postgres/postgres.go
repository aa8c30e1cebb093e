// Package postgres is the storage.Backend for high availability: several
// Keyward nodes share one PostgreSQL database.
//
// It owns two tables in the database named by the DSN: kv, the key-value
// pairs, and schema_migrations, the versions of its own schema. Open applies
// missing migrations once, in order, inside a transaction that holds an
// advisory lock, so nodes starting together do not race.
//
// Keys are stored as BYTEA, not TEXT: BYTEA compares bytes like memcmp, which
// is exactly Go's string order, and it holds any Go string, including NUL
// bytes and invalid UTF-8, without depending on a collation.
//
// Update runs at SERIALIZABLE isolation and is retried, with jittered
// backoff, when PostgreSQL reports a serialization failure or deadlock, so
// its function may run more than once. View runs at REPEATABLE READ, READ
// ONLY: one consistent snapshot that never blocks or aborts writers. BEGIN
// travels in one pipeline with a transaction's first statement, and a
// read-only transaction's COMMIT is not waited for, so a View of two reads
// costs two round trips. Errors
// that mean the database cannot be reached wrap storage.ErrUnavailable.
//
// The package sees only what the barrier has sealed (names and ciphertext).
// It must never log or return the DSN, which may carry a password, and never
// put key names or values into error messages.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keyward/keyward/internal/storage"
)

var _ storage.Backend = (*Backend)(nil)

var (
	errReadOnly = errors.New("postgres: write in a read-only transaction")
	errEmptyKey = errors.New("postgres: empty key")
	errTxDone   = errors.New("postgres: transaction used after its function returned")
)

// Options configures Open.
type Options struct {
	// DSN names the database, as a libpq keyword/value string or a
	// postgres:// URL. TLS is configured here too: use sslmode=verify-full
	// (with sslrootcert) in production; pgx's default, sslmode=prefer, falls
	// back to plaintext and does not authenticate the server. Prefer a
	// password file (passfile=…) to a password in the DSN.
	DSN string

	// MaxConns caps the connection pool. Zero means pgxpool's default, the
	// greater of 4 and the number of CPUs.
	MaxConns int32

	// StatementTimeout makes the server cancel any statement that runs
	// longer (statement_timeout). Zero keeps the server's setting.
	StatementTimeout time.Duration

	// MaxAttempts bounds how many times Update runs a transaction that ends
	// in a serialization failure or deadlock. Zero means 20.
	MaxAttempts int
}

// Backend is a storage.Backend on a PostgreSQL connection pool. It is safe
// for concurrent use.
type Backend struct {
	pool        *pgxpool.Pool
	maxAttempts int
}

// Open connects to the database and brings its schema up to date. It fails
// if the schema is newer than this build knows.
func Open(ctx context.Context, opts Options) (*Backend, error) {
	cfg, err := pgxpool.ParseConfig(opts.DSN)
	if err != nil {
		// pgx's message quotes the DSN with the password masked on a
		// best-effort basis; say nothing about it instead.
		return nil, errors.New("postgres: cannot parse the DSN")
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if opts.StatementTimeout > 0 {
		cfg.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(opts.StatementTimeout.Milliseconds(), 10)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, wrap(ctx, "open", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, wrap(ctx, "migrate", err)
	}
	attempts := opts.MaxAttempts
	if attempts <= 0 {
		attempts = 20
	}
	return &Backend{pool: pool, maxAttempts: attempts}, nil
}

// migrations are the schema, one step per version. Append only: never edit
// or reorder a step that has been released.
var migrations = []struct {
	version int
	sql     string
}{
	{1, `CREATE TABLE kv (key BYTEA PRIMARY KEY, value BYTEA NOT NULL)`},
}

// migrationLock is the advisory lock key that serializes migrations; it
// spells "keyward" plus a version byte. Advisory locks are per database.
const migrationLock int64 = 0x6b6579776172_6401

func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	// READ COMMITTED, whatever the server's default: after waiting for the
	// lock, each statement must see what the previous holder committed.
	return pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		// Released when the transaction ends, even if the connection dies.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INT PRIMARY KEY,
			applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
		)`)
		if err != nil {
			return err
		}
		var current int
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return err
		}
		if latest := migrations[len(migrations)-1].version; current > latest {
			return fmt.Errorf("database schema version %d is newer than this build supports (%d)", current, latest)
		}
		for _, m := range migrations {
			if m.version <= current {
				continue
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("version %d: %w", m.version, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, m.version); err != nil {
				return fmt.Errorf("version %d: %w", m.version, err)
			}
		}
		return nil
	})
}

// Transactions begin lazily: BEGIN is sent in one pipeline with the first
// statement, so a request's first read costs one round trip, not two.
const (
	beginView   = `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`
	beginUpdate = `BEGIN ISOLATION LEVEL SERIALIZABLE`
)

// View runs fn in a REPEATABLE READ, READ ONLY transaction: every read sees
// the same snapshot.
func (b *Backend) View(ctx context.Context, fn func(storage.Tx) error) error {
	return b.run(ctx, beginView, fn)
}

// Update runs fn in a SERIALIZABLE transaction and commits it. When the
// transaction fails with a serialization failure or deadlock it is rolled
// back and fn runs again, after a jittered backoff, up to Options.MaxAttempts
// times; running out of attempts returns an error wrapping
// storage.ErrUnavailable. If the connection fails during COMMIT the outcome
// is unknown: Update returns ErrUnavailable and the write may or may not be
// there.
func (b *Backend) Update(ctx context.Context, fn func(storage.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := b.run(ctx, beginUpdate, fn)
		if !conflict(err) {
			return err
		}
		if attempt == b.maxAttempts {
			return fmt.Errorf("postgres: %d attempts conflicted: %w: %w", attempt, storage.ErrUnavailable, err)
		}
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return err
		}
	}
}

// backoff returns a random delay in [0, min(2ms·2^attempt, 250ms)) ("full
// jitter"), so conflicting writers spread out instead of colliding again.
func backoff(attempt int) time.Duration {
	d := min(2*time.Millisecond<<min(attempt, 10), 250*time.Millisecond)
	return rand.N(d)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run runs fn once in a transaction opened by the statement begin, and
// commits unless fn or a statement failed. A transaction in which fn ran no
// statement never reaches the server.
func (b *Backend) run(ctx context.Context, begin string, fn func(storage.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return wrap(ctx, "begin", err)
	}
	release := true
	defer func() {
		// Release destroys a connection that is still in a transaction, so
		// an early return never hands an open transaction to the next
		// caller.
		if release {
			conn.Release()
		}
	}()

	t := &tx{ctx: ctx, conn: conn, begin: begin, writable: begin != beginView}
	fnErr := fn(t)
	t.done = true
	if !t.begun {
		return fnErr // no statement ran: there is no transaction to end
	}
	switch {
	case conflict(t.err):
		// Whatever fn made of it, the transaction is lost: retry.
		err = t.err
	case fnErr != nil:
		err = fnErr
	case t.err != nil:
		// fn ignored a failed statement, but PostgreSQL aborted the
		// transaction: nothing fn did counts.
		err = t.err
	case begin == beginView:
		// Everything fn read is final: a read-only snapshot has nothing
		// to commit and its COMMIT cannot fail in a way that matters, so
		// the caller does not wait for it. The connection returns to the
		// pool when it is done (or is closed if it fails).
		release = false
		go func() {
			defer conn.Release()
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			conn.Exec(ctx, `COMMIT`)
		}()
		return nil
	default:
		if _, err := conn.Exec(ctx, `COMMIT`); err != nil {
			return wrap(ctx, "commit", err)
		}
		return nil
	}
	// The transaction failed (err): end it so that the connection can be
	// reused. If the context is done or ROLLBACK fails, Release closes the
	// connection.
	if ctx.Err() == nil {
		conn.Exec(ctx, `ROLLBACK`)
	}
	return err
}

// Close closes the pool, waiting for connections in use to be returned.
func (b *Backend) Close() error {
	b.pool.Close()
	return nil
}

// tx adapts a pgx transaction to storage.Tx. It holds the context of the
// View or Update call it belongs to, because storage.Tx methods take none;
// it does not outlive that call.
type tx struct {
	ctx      context.Context
	conn     *pgxpool.Conn
	begin    string // the BEGIN statement, sent with the first statement
	begun    bool
	writable bool
	done     bool
	err      error // the first failed statement; PostgreSQL aborts the transaction
}

// send runs the statements queued by queue, after BEGIN if the transaction
// has not begun, in one round trip. The result callbacks of the queued
// statements run before it returns; its error is the first of any of them.
func (t *tx) send(queue func(*pgx.Batch)) error {
	var b pgx.Batch
	if !t.begun {
		b.Queue(t.begin)
		t.begun = true // from here on, run ends the transaction
	}
	queue(&b)
	return t.conn.SendBatch(t.ctx, &b).Close()
}

// check reports why t cannot run a statement, if it cannot.
func (t *tx) check() error {
	if t.done {
		return errTxDone
	}
	return t.err
}

// fail records a failed statement and returns the error to give fn.
func (t *tx) fail(op string, err error) error {
	t.err = wrap(t.ctx, op, err)
	return t.err
}

func (t *tx) Get(key string) ([]byte, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	var v []byte // pgx copies bytea into a new slice
	err := t.send(func(b *pgx.Batch) {
		b.Queue(`SELECT value FROM kv WHERE key = $1`, []byte(key)).QueryRow(func(row pgx.Row) error {
			return row.Scan(&v)
		})
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, storage.ErrNotFound
	}
	if err != nil {
		return nil, t.fail("get", err)
	}
	return v, nil
}

func (t *tx) Put(key string, value []byte) error {
	if err := t.check(); err != nil {
		return err
	}
	if !t.writable {
		return errReadOnly
	}
	if key == "" {
		return errEmptyKey
	}
	if value == nil {
		value = []byte{} // nil would be sent as NULL
	}
	err := t.send(func(b *pgx.Batch) {
		b.Queue(`INSERT INTO kv (key, value) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, []byte(key), value)
	})
	if err != nil {
		return t.fail("put", err)
	}
	return nil
}

func (t *tx) Delete(key string) error {
	if err := t.check(); err != nil {
		return err
	}
	if !t.writable {
		return errReadOnly
	}
	if err := t.send(func(b *pgx.Batch) { b.Queue(`DELETE FROM kv WHERE key = $1`, []byte(key)) }); err != nil {
		return t.fail("delete", err)
	}
	return nil
}

// scanChunk is how many rows Scan fetches per query. A chunk is read into
// memory before fn sees it, so fn may call Get; a caller that stops early
// has read at most one chunk past what it used.
const scanChunk = 256

// Scan queries the key range [prefix, prefixEnd(prefix)) rather than using
// LIKE, which would need % and _ escaped and may not use the index.
func (t *tx) Scan(prefix, after string, fn func(key string, value []byte) bool) error {
	if err := t.check(); err != nil {
		return err
	}
	query := `SELECT key, value FROM kv WHERE key >= $1 AND key > $2 ORDER BY key LIMIT $3`
	args := []any{[]byte(prefix), []byte(after), scanChunk}
	if end := prefixEnd(prefix); end != nil {
		query = `SELECT key, value FROM kv WHERE key >= $1 AND key > $2 AND key < $4 ORDER BY key LIMIT $3`
		args = append(args, end)
	}
	for {
		type row struct{ key, value []byte }
		var chunk []row
		err := t.send(func(b *pgx.Batch) {
			b.Queue(query, args...).Query(func(rows pgx.Rows) error {
				var err error
				chunk, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
					var e row
					err := r.Scan(&e.key, &e.value)
					return e, err
				})
				return err
			})
		})
		if err != nil {
			return t.fail("scan", err)
		}
		for _, e := range chunk {
			if !fn(string(e.key), e.value) {
				return nil
			}
		}
		if len(chunk) < scanChunk {
			return nil
		}
		args[1] = chunk[len(chunk)-1].key
	}
}

// prefixEnd returns the least key greater than every key that starts with
// prefix, or nil if there is none (prefix is empty or all 0xff bytes).
func prefixEnd(prefix string) []byte {
	end := []byte(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// conflict reports whether err means the transaction lost a race and may
// succeed if run again.
func conflict(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) &&
		(pgErr.Code == "40001" || pgErr.Code == "40P01") // serialization_failure, deadlock_detected
}

// unavailable reports whether err means the database could not be reached
// or went away, as opposed to rejecting what was asked.
func unavailable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "53300", // too_many_connections
			"57P01", // admin_shutdown
			"57P02", // crash_shutdown
			"57P03": // cannot_connect_now
			return true
		}
		return strings.HasPrefix(pgErr.Code, "08") // connection_exception
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// wrap adds the operation to err and marks it with storage.ErrUnavailable
// when the database could not be reached. An error caused by ctx is returned
// as the context's error.
func wrap(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		return fmt.Errorf("postgres: %s: %w (%v)", op, ctxErr, err)
	}
	if unavailable(err) {
		return fmt.Errorf("postgres: %s: %w: %w", op, storage.ErrUnavailable, err)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}
