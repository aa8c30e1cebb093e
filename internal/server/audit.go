package server

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/keyward/keyward/internal/audit"
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
