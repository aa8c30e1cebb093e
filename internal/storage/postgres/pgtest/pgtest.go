// Package pgtest starts a throwaway PostgreSQL server for tests.
//
// Start runs initdb into a new temporary directory, starts the server on a
// free loopback port with its Unix socket in that directory, and stops and
// deletes it when the test ends. NewDatabase then hands each test an empty
// database owned by an unprivileged role, so code under test never runs as
// superuser. The server is tuned for speed, not safety (fsync=off): it is for
// tests only and must never hold data anyone wants to keep.
//
// When the PostgreSQL server binaries are missing, Start skips the test, or
// fails it when the CI environment variable is set, so CI cannot pass by
// skipping (STYLE.md §6). PostgreSQL refuses to run as root; as root, Start
// runs it as the "postgres" user.
package pgtest

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// role is the unprivileged role that owns the databases NewDatabase creates.
const role = "keyward"

// Server is a running PostgreSQL server owned by one test.
type Server struct {
	port     int
	password string // of both the superuser and role
	dbs      atomic.Int64

	cred    *syscall.Credential
	pgctl   string
	data    string
	logfile string
}

// Start starts a new PostgreSQL server that lives until t and its subtests
// have finished.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := findBin()
	if bin == "" {
		missing(t, "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or $PATH; install them with: apt-get install postgresql")
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			missing(t, "running as root, which PostgreSQL refuses, and there is no \"postgres\" user to run it as")
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}

	// Not t.TempDir: its parent is private to the test's user, and the
	// server may run as another one.
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) }) // registered first, so it runs after the server stops
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}

	s := &Server{password: rand.Text()}
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		if err := os.Chown(pwfile, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	run(t, cred, filepath.Join(bin, "initdb"), "--pgdata="+data, "--username=postgres", "--pwfile="+pwfile,
		"--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync")
	os.Remove(pwfile)

	conf := strings.Join([]string{
		"listen_addresses = '127.0.0.1'",
		"unix_socket_directories = '" + dir + "'",
		"fsync = off",
		"synchronous_commit = off",
		"full_page_writes = off",
	}, "\n")
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = fmt.Fprintf(f, "\n%s\n", conf)
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		t.Fatal(err)
	}

	// Another process may take the port between freePort and the server's
	// bind; try a few.
	pgctl := filepath.Join(bin, "pg_ctl")
	logfile := filepath.Join(dir, "server.log")
	for attempt := 1; ; attempt++ {
		s.port = freePort(t)
		out, err := command(cred, pgctl, "start", "--pgdata="+data, "--log="+logfile, "--wait", "--timeout=60",
			"--options=-p "+strconv.Itoa(s.port)).CombinedOutput()
		if err == nil {
			break
		}
		log, _ := os.ReadFile(logfile)
		if attempt < 3 && strings.Contains(string(log), "could not bind") {
			continue
		}
		t.Fatalf("pgtest: pg_ctl start: %v\n%s\nserver log:\n%s", err, out, log)
	}
	s.cred, s.pgctl, s.data, s.logfile = cred, pgctl, data, logfile
	t.Cleanup(func() {
		if out, err := command(cred, pgctl, "status", "--pgdata="+data).CombinedOutput(); err != nil {
			_ = out // already stopped by the test
			return
		}
		out, err := command(cred, pgctl, "stop", "--pgdata="+data, "--mode=fast", "--wait").CombinedOutput()
		if err != nil {
			t.Errorf("pgtest: pg_ctl stop: %v\n%s", err, out)
		}
	})

	s.admin(t, "CREATE ROLE "+role+" LOGIN PASSWORD '"+s.password+"'")
	return s
}

// Stop stops the server (fast shutdown: sessions are disconnected), as an
// outage would. Start brings it back on the same port with the same data.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if out, err := command(s.cred, s.pgctl, "stop", "--pgdata="+s.data, "--mode=fast", "--wait").CombinedOutput(); err != nil {
		t.Fatalf("pgtest: pg_ctl stop: %v\n%s", err, out)
	}
}

// Start restarts a server stopped with Stop.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	out, err := command(s.cred, s.pgctl, "start", "--pgdata="+s.data, "--log="+s.logfile, "--wait", "--timeout=60",
		"--options=-p "+strconv.Itoa(s.port)).CombinedOutput()
	if err != nil {
		t.Fatalf("pgtest: pg_ctl start: %v\n%s", err, out)
	}
}

// NewDatabase creates an empty database owned by an unprivileged role and
// returns a DSN for it.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("test%d", s.dbs.Add(1))
	s.admin(t, "CREATE DATABASE "+name+" OWNER "+role)
	return s.dsn(role, name)
}

func (s *Server) dsn(user, db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(user, s.password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable", // loopback only; the test server has no certificate
	}
	return u.String()
}

// admin runs sql as the superuser.
func (s *Server) admin(t testing.TB, sql string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), s.dsn("postgres", "postgres"))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(t.Context())
	if _, err := conn.Exec(t.Context(), sql); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// findBin returns the directory holding initdb and pg_ctl, preferring the
// newest Debian-style versioned directory, or "" if there is none.
func findBin() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "pg_ctl")) {
			return d
		}
	}
	return ""
}

// version returns the major version in /usr/lib/postgresql/{version}/bin.
func version(bin string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(bin)))
	return n
}

func isExec(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

func missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("pgtest: %s (failing rather than skipping because CI is set)", msg)
	}
	t.Skipf("pgtest: %s; skipping (with CI set this fails)", msg)
}

func command(cred *syscall.Credential, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	// A clean environment: PGDATA, PGPORT and friends must not leak in.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C"}
	cmd.Dir = "/"
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	// pg_ctl leaves a server running; don't wait forever should it keep
	// our output pipe open.
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

func run(t testing.TB, cred *syscall.Credential, name string, args ...string) {
	t.Helper()
	out, err := command(cred, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("pgtest: %s: %v\n%s", filepath.Base(name), err, out)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
