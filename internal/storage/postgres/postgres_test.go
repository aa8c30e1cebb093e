package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/postgres/pgtest"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

// TestPostgres runs everything that needs a server under one test, so the
// server is started once.
func TestPostgres(t *testing.T) {
	srv := pgtest.Start(t)
	open := func(t *testing.T, opts Options) *Backend {
		t.Helper()
		b, err := Open(t.Context(), opts)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	t.Run("Conformance", func(t *testing.T) {
		storagetest.Run(t, func(t *testing.T) storage.Backend {
			return open(t, Options{DSN: srv.NewDatabase(t)})
		})
	})

	t.Run("Durable", func(t *testing.T) {
		storagetest.RunDurable(t, func(t *testing.T) func() storage.Backend {
			dsn := srv.NewDatabase(t)
			return func() storage.Backend { return open(t, Options{DSN: dsn}) }
		})
	})

	t.Run("ConnectionsReused", func(t *testing.T) {
		// Transactions end on their connection — committed, rolled back
		// after an error, or committed in the background after a read — so
		// the pool keeps its connections instead of replacing them.
		b := open(t, Options{DSN: srv.NewDatabase(t), MaxConns: 2})
		defer b.Close()
		if err := b.Update(t.Context(), func(tx storage.Tx) error { return tx.Put("k", []byte("v")) }); err != nil {
			t.Fatal(err)
		}
		errFn := errors.New("fn failed")
		for i := range 200 {
			var err error
			switch i % 4 {
			case 0: // a read
				err = b.View(t.Context(), func(tx storage.Tx) error { _, err := tx.Get("k"); return err })
			case 1: // a read whose function fails after reading
				err = b.View(t.Context(), func(tx storage.Tx) error { tx.Get("k"); return errFn })
			case 2: // a write whose function fails after writing
				err = b.Update(t.Context(), func(tx storage.Tx) error { tx.Put("k", []byte("x")); return errFn })
			case 3: // a read of a missing key
				err = b.View(t.Context(), func(tx storage.Tx) error { _, err := tx.Get("missing"); return err })
			}
			want := map[int]error{1: errFn, 2: errFn, 3: storage.ErrNotFound}[i%4]
			if !errors.Is(err, want) {
				t.Fatalf("transaction %d: %v, want %v", i, err, want)
			}
		}
		// The failed write left nothing behind.
		err := b.View(t.Context(), func(tx storage.Tx) error {
			v, err := tx.Get("k")
			if err == nil && string(v) != "v" {
				err = fmt.Errorf("k = %q after rolled-back writes", v)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for b.pool.Stat().AcquiredConns() != 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond) // background COMMITs finishing
		}
		st := b.pool.Stat()
		if st.AcquiredConns() != 0 || st.NewConnsCount() > 2 {
			t.Fatalf("after 200 transactions: %d connections held, %d opened (pool of 2)", st.AcquiredConns(), st.NewConnsCount())
		}
	})

	t.Run("ConflictRetry", func(t *testing.T) {
		b := open(t, Options{DSN: srv.NewDatabase(t)})
		defer b.Close()
		testConflictRetry(t, b)
	})

	t.Run("ConcurrentMigrations", func(t *testing.T) {
		dsn := srv.NewDatabase(t)
		var wg sync.WaitGroup
		backends := make([]*Backend, 8)
		errs := make([]error, len(backends))
		for i := range backends {
			wg.Go(func() { backends[i], errs[i] = Open(t.Context(), Options{DSN: dsn, MaxConns: 1}) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("Open %d: %v", i, err)
				continue
			}
			backends[i].Close()
		}
		versions := query[int](t, dsn, `SELECT version FROM schema_migrations ORDER BY version`)
		if want := []int{1}; !slices.Equal(versions, want) {
			t.Errorf("schema_migrations = %v, want %v", versions, want)
		}
	})

	t.Run("SchemaTooNew", func(t *testing.T) {
		dsn := srv.NewDatabase(t)
		open(t, Options{DSN: dsn}).Close()
		query[int](t, dsn, `INSERT INTO schema_migrations (version) VALUES (999) RETURNING version`)
		b, err := Open(t.Context(), Options{DSN: dsn})
		if err == nil {
			b.Close()
			t.Fatal("Open of a database with a newer schema succeeded")
		}
		if !strings.Contains(err.Error(), "newer") || errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("Open: %v, want a schema-too-new error", err)
		}
	})

	t.Run("Options", func(t *testing.T) {
		b := open(t, Options{DSN: srv.NewDatabase(t), MaxConns: 3, StatementTimeout: 1500 * time.Millisecond})
		defer b.Close()
		var timeout string
		if err := b.pool.QueryRow(t.Context(), `SHOW statement_timeout`).Scan(&timeout); err != nil {
			t.Fatal(err)
		}
		if timeout != "1500ms" {
			t.Errorf("statement_timeout = %q, want 1500ms", timeout)
		}
		if got := b.pool.Config().MaxConns; got != 3 {
			t.Errorf("MaxConns = %d, want 3", got)
		}
	})

	t.Run("ConnectionLost", func(t *testing.T) {
		b := open(t, Options{DSN: srv.NewDatabase(t)})
		defer b.Close()
		admin, err := pgx.Connect(t.Context(), b.pool.Config().ConnConfig.ConnString())
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close(t.Context())
		// End the session under a running transaction (a role may end its
		// own sessions), then write through it.
		err = b.Update(t.Context(), func(stx storage.Tx) error {
			var pid int
			if err := stx.(*tx).conn.QueryRow(t.Context(), `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
				return err
			}
			if _, err := admin.Exec(t.Context(), `SELECT pg_terminate_backend($1)`, pid); err != nil {
				return err
			}
			return stx.Put("k", []byte("v"))
		})
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("Update on a terminated session: %v, want ErrUnavailable", err)
		}
		// The pool replaces the connection.
		if err := b.Update(t.Context(), func(tx storage.Tx) error { return tx.Put("k", []byte("v")) }); err != nil {
			t.Errorf("Update after reconnect: %v", err)
		}
	})
}

// testConflictRetry makes two read-modify-write transactions overlap for
// certain: each waits, after reading, until the other has read. One of them
// must fail to serialize; Update must retry it so that both succeed.
func testConflictRetry(t *testing.T, b *Backend) {
	ctx := t.Context()
	increment := func(tx storage.Tx) (int, error) {
		v, err := tx.Get("counter")
		if err != nil {
			return 0, err
		}
		n, err := strconv.Atoi(string(v))
		return n + 1, err
	}
	if err := b.Update(ctx, func(tx storage.Tx) error { return tx.Put("counter", []byte("0")) }); err != nil {
		t.Fatal(err)
	}

	var read sync.WaitGroup
	read.Add(2)
	var calls atomic.Int32
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			first := true
			err := b.Update(ctx, func(tx storage.Tx) error {
				calls.Add(1)
				n, err := increment(tx)
				if err != nil {
					return err
				}
				if first {
					first = false
					read.Done()
					read.Wait()
				}
				return tx.Put("counter", []byte(strconv.Itoa(n)))
			})
			if err != nil {
				t.Errorf("Update: %v", err)
			}
			// Then more increments without forcing the overlap.
			for range 50 {
				err := b.Update(ctx, func(tx storage.Tx) error {
					n, err := increment(tx)
					if err != nil {
						return err
					}
					return tx.Put("counter", []byte(strconv.Itoa(n)))
				})
				if err != nil {
					t.Errorf("Update: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if c := calls.Load(); c < 3 {
		t.Errorf("overlapping transactions ran %d times; one of them should have been retried", c)
	}
	var got string
	err := b.View(ctx, func(tx storage.Tx) error {
		v, err := tx.Get("counter")
		got = string(v)
		return err
	})
	if err != nil || got != "102" {
		t.Errorf("counter = %q, %v; want 102", got, err)
	}
}

// query runs sql on a connection of its own and returns the first column.
func query[T any](t *testing.T, dsn, sql string) []T {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	rows, err := conn.Query(t.Context(), sql)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[T])
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestOpenUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dsn := fmt.Sprintf("postgres://keyward:s3cret-pw@127.0.0.1:%d/keyward?sslmode=disable&connect_timeout=5", port)
	b, err := Open(t.Context(), Options{DSN: dsn})
	if err == nil {
		b.Close()
		t.Fatal("Open of a closed port succeeded")
	}
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Open: %v, want ErrUnavailable", err)
	}
	if strings.Contains(err.Error(), "s3cret-pw") {
		t.Errorf("error reveals the password: %v", err)
	}
}

func TestOpenBadDSN(t *testing.T) {
	for _, dsn := range []string{
		"postgres://keyward:s3cret-pw@127.0.0.1:notaport/db",
		"host=localhost password=s3cret-pw port=notaport",
		"password='s3cret-pw",
	} {
		_, err := Open(t.Context(), Options{DSN: dsn})
		if err == nil {
			t.Errorf("Open(%q) succeeded", dsn)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error reveals the password: %v", err)
		}
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, c := range []struct {
		prefix string
		want   []byte
	}{
		{"", nil},
		{"\xff", nil},
		{"\xff\xff", nil},
		{"a", []byte("b")},
		{"ab", []byte("ac")},
		{"a\xff", []byte("b")},
		{"a\xff\xff", []byte("b")},
		{"a\x7f", []byte("a\x80")},
		{"\x00", []byte("\x01")},
	} {
		if got := prefixEnd(c.prefix); !slices.Equal(got, c.want) || (got == nil) != (c.want == nil) {
			t.Errorf("prefixEnd(%q) = %q, want %q", c.prefix, got, c.want)
		}
	}
}

func TestClassify(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: code}) }
	for _, c := range []struct {
		err                   error
		conflict, unavailable bool
	}{
		{pg("40001"), true, false},
		{pg("40P01"), true, false},
		{pg("08006"), false, true},
		{pg("57P01"), false, true},
		{pg("53300"), false, true},
		{pg("23505"), false, false},
		{pg("28P01"), false, false}, // bad password: not temporary
		{pg("57014"), false, false}, // statement timeout
		{io.ErrUnexpectedEOF, false, true},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, false, true},
		{pgconn.ErrConnClosed, false, true},
		{errors.New("other"), false, false},
		{nil, false, false},
	} {
		if got := conflict(c.err); got != c.conflict {
			t.Errorf("conflict(%v) = %v", c.err, got)
		}
		if got := unavailable(c.err); got != c.unavailable {
			t.Errorf("unavailable(%v) = %v", c.err, got)
		}
	}
	// A canceled caller is not an unavailable database.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := wrap(ctx, "get", io.ErrUnexpectedEOF); !errors.Is(err, context.Canceled) || errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("wrap with canceled ctx = %v", err)
	}
}
