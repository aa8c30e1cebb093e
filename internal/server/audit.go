package server

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/auditsink"
	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/storage"
)

// AuditConfig configures the audit log file and its chain (docs/CONFIG.md,
// [audit]).
type AuditConfig struct {
	// Node names this node's hash chain; empty: the host name.
	Node string
	// RotateBytes and RotateAge rotate the file (0: never).
	RotateBytes int64
	RotateAge   time.Duration
	// Fsync: "batch" syncs after every group write; "" or "none" does not.
	Fsync string
	// CheckpointEvery and CheckpointInterval: a signed checkpoint after
	// that many events (default 1000) and at least that often while events
	// come (default a minute).
	CheckpointEvery    int64
	CheckpointInterval time.Duration
	// FileBestEffort makes the file sink best-effort: a request whose event
	// the file refuses is answered if another sink took the event. By
	// default the file is required.
	FileBestEffort bool
	// Sinks are further sinks, written after the file in this order.
	Sinks []AuditSinkConfig
}

// AuditSinkConfig is one further audit sink ([[audit.sink]]).
type AuditSinkConfig struct {
	// Type is "syslog" (RFC 5424 over TCP+TLS), "http" (batched JSON lines
	// with a disk buffer) or "stdout".
	Type string
	// Required: a request whose event this sink refuses is refused (503).
	Required bool
	// Address is the syslog collector's host:port.
	Address string
	// URL is the HTTP collector's endpoint.
	URL string
	// CAFile is a PEM bundle trusted for the collector; empty: system roots.
	CAFile string
	// Header is sent with every HTTP batch (e.g. Authorization).
	Header map[string]string
	// BufferBytes bounds the HTTP sink's disk buffer (0: 64 MiB).
	BufferBytes int64
}

// auditTargets are the file sink and the configured ones, as the Log
// writes them.
func (s *Server) auditTargets(file audit.Sink) ([]audit.Target, error) {
	ts := []audit.Target{{Name: "file", Sink: file, Required: !s.cfg.Audit.FileBestEffort}}
	seen := map[string]int{}
	for i, c := range s.cfg.Audit.Sinks {
		name := fmt.Sprintf("%s-%d", c.Type, i+1)
		var roots *x509.CertPool
		if c.CAFile != "" {
			pem, err := os.ReadFile(c.CAFile)
			if err != nil {
				return nil, fmt.Errorf("audit sink %s: %w", name, err)
			}
			roots = x509.NewCertPool()
			if !roots.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("audit sink %s: no certificate in %s", name, c.CAFile)
			}
		}
		var sink audit.Sink
		switch c.Type {
		case "stdout":
			sink = auditsink.NewWriter(os.Stdout)
		case "syslog":
			if c.Address == "" {
				return nil, fmt.Errorf("audit sink %s: no address", name)
			}
			sink = auditsink.NewSyslog(auditsink.SyslogOptions{Addr: c.Address, TLS: &tls.Config{RootCAs: roots}})
		case "http":
			h := http.Header{}
			for k, v := range c.Header {
				h.Set(k, v)
			}
			client := &http.Client{Timeout: 10 * time.Second,
				Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
			id := SinkIdentity(c)
			seen[id]++
			buf, err := sinkBuffer(s.cfg.DataDir, name, id, seen[id])
			if err != nil {
				return nil, fmt.Errorf("audit sink %s: %w", name, err)
			}
			hs, err := auditsink.NewHTTP(auditsink.HTTPOptions{URL: c.URL, Header: h, Client: client, BufferBytes: c.BufferBytes,
				BufferPath: buf})
			if err != nil {
				return nil, fmt.Errorf("audit sink %s: %w", name, err)
			}
			sink = hs
		default:
			return nil, fmt.Errorf("audit sink %d: unknown type %q (syslog, http or stdout)", i+1, c.Type)
		}
		ts = append(ts, audit.Target{Name: name, Sink: sink, Required: c.Required})
	}
	return ts, nil
}

// sinkBuffer is the disk buffer of an HTTP sink: named after the sink's
// identity (SinkIdentity; the n-th sink of that identity), never after its
// place in the configuration. Named by place, removing the first of two
// sinks made the second open the removed one's buffer and send its unsent
// events to another collector. A buffer named by place (http-N.buffer,
// before this naming) is adopted by the sink now at that place if that
// sink has no buffer of its own yet: the one start after the upgrade keeps
// the old rule.
func sinkBuffer(dir, name, identity string, n int) (string, error) {
	sum := sha256.Sum256([]byte(identity + "\x00" + strconv.Itoa(n)))
	path := filepath.Join(dir, "http-"+hex.EncodeToString(sum[:8])+".buffer")
	legacy := filepath.Join(dir, name+".buffer")
	if _, err := os.Stat(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return path, err
	}
	if _, err := os.Stat(legacy); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return path, nil
		}
		return "", err
	}
	if err := os.Rename(legacy+".offset", path+".offset"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	return path, os.Rename(legacy, path)
}

// JobAuditCheckpoint signs a checkpoint of the audit chain when events were
// written since the last one (every AuditConfig.CheckpointInterval).
const JobAuditCheckpoint = "audit-checkpoint"

// checkpointKeyName is where the barrier keeps the checkpoint signing key
// (system namespace).
const checkpointKeyName = "audit/checkpoint-key"

// openAuditFile opens the audit log file with the configured rotation,
// fsync and chain.
func (s *Server) openAuditFile() (*audit.FileSink, error) {
	c := s.cfg.Audit
	node := c.Node
	if node == "" {
		node, _ = os.Hostname()
	}
	return audit.OpenFileWith(cmp.Or(s.cfg.AuditPath, filepath.Join(s.cfg.DataDir, "audit.log")), audit.FileOptions{
		Node: node, MaxBytes: c.RotateBytes, MaxAge: c.RotateAge, Fsync: c.Fsync,
		CheckpointEvery: c.CheckpointEvery, Clock: s.clock,
	})
}

// auditAfterUnseal gives the audit file the checkpoint signing key, made
// on first use and kept sealed by the barrier.
func (s *Server) auditAfterUnseal(ctx context.Context) error {
	if s.auditFile == nil {
		return nil
	}
	var key ed25519.PrivateKey
	err := s.barrier.System().Update(ctx, func(tx barrier.Tx) error {
		raw, err := tx.Get(checkpointKeyName)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			_, key, err = ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			return tx.Put(checkpointKeyName, key.Seed())
		case err != nil:
			return err
		case len(raw) != ed25519.SeedSize:
			return errors.New("audit: stored checkpoint key is malformed")
		}
		key = ed25519.NewKeyFromSeed(raw)
		return nil
	})
	if err != nil {
		return err
	}
	s.auditFile.SetSigner(key)
	s.log.Info("audit checkpoints signed", "key", audit.KeyFingerprint(key.Public().(ed25519.PublicKey)))
	return nil
}

// auditCheckpoint is the JobAuditCheckpoint job.
func (s *Server) auditCheckpoint(context.Context) error {
	if s.auditFile == nil {
		return nil
	}
	if err := s.auditFile.Checkpoint(); err != nil {
		s.log.Error("audit checkpoint failed", "error", err)
	}
	return nil
}

// CheckpointPublicKey is the key audit checkpoints are signed with (nil
// while sealed before the first unseal).
func (s *Server) CheckpointPublicKey() ed25519.PublicKey {
	if s.auditFile == nil {
		return nil
	}
	return s.auditFile.SignerPublic()
}

// AuditSinks reports the state of every audit sink.
func (s *Server) AuditSinks() []audit.SinkState { return s.audit.Sinks() }

// auditSource opens this node's audit log and its rotated files, oldest
// first, for the audit report API (mgmt.AuditSource). The checkpoint file
// is not read.
func (s *Server) auditSource() ([]audit.Input, func(), error) {
	path := cmp.Or(s.cfg.AuditPath, filepath.Join(s.cfg.DataDir, "audit.log"))
	rotated, err := filepath.Glob(globEscape(path) + ".*")
	if err != nil {
		return nil, nil, err
	}
	sort.Strings(rotated) // audit.log.{time}-{seq}: time order
	var files []*os.File
	done := func() {
		for _, f := range files {
			f.Close()
		}
	}
	var inputs []audit.Input
	for _, name := range append(rotated, path) {
		if strings.HasSuffix(name, ".checkpoints") {
			continue
		}
		f, err := os.Open(name)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // rotated away meanwhile
			}
			done()
			return nil, nil, err
		}
		files = append(files, f)
		inputs = append(inputs, audit.Input{Name: filepath.Base(name), R: f})
	}
	return inputs, done, nil
}

// globEscape escapes the glob metacharacters of a literal path.
func globEscape(p string) string {
	var b strings.Builder
	for _, r := range p {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
