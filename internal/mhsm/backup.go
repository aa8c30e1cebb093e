package mhsm

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/errs"
	"github.com/keyward/keyward/internal/vault"
)

// Full backup, full restore and selective key restore (azadmin/backup):
// long-running jobs, one at a time per pool. A backup is one blob,
// {folder}/backup.kwbak, encrypted (AES-256-GCM) under a key derived from
// the pool's security domain secret: only a pool holding that security
// domain opens it. A restore writes every key in one transaction, so one
// that fails midway leaves the pool as it was.

// BlobStore is where backups go: a blob container (internal/backupstore:
// Azure Blob Storage through azblob, or a local directory).
type BlobStore interface {
	Put(ctx context.Context, name string, data []byte) error
	Get(ctx context.Context, name string) ([]byte, error)
	// URI is the container's URI (no SAS token).
	URI() string
}

// Opener opens the container a request names: its URI and SAS token.
type Opener func(ctx context.Context, uri, token string) (BlobStore, error)

// SetBackupOpener sets how backup containers are opened (nil: no backups).
func (s *Service) SetBackupOpener(o Opener) { s.opener = o }

// Job kinds and states.
const (
	JobBackup    = "backup"
	JobRestore   = "restore"
	JobSelective = "selective"

	InProgress = "InProgress"
	Succeeded  = "Succeeded"
	Failed     = "Failed"
)

// Job is a backup or restore and its progress.
type Job struct {
	ID            string
	Kind          string
	Pool          string
	Status        string
	StatusDetails string
	ErrCode       string
	ErrMsg        string
	Start, End    time.Time
	ContainerURI  string // backup: the folder's URI
}

type jobState struct {
	mu      sync.Mutex
	running map[string]string // pool → job ID
	jobs    map[string]*Job
}

func (s *Service) jobsState() *jobState {
	s.jobOnce.Do(func() { s.jobSt = &jobState{running: map[string]string{}, jobs: map[string]*Job{}} })
	return s.jobSt
}

// Job returns a job of pool p.
func (s *Service) Job(p *Pool, id string) (*Job, error) {
	st := s.jobsState()
	st.mu.Lock()
	defer st.mu.Unlock()
	j := st.jobs[strings.ToLower(id)]
	if j == nil || !strings.EqualFold(j.Pool, p.Name) {
		return nil, fail(errs.NotFound, "JobNotFound", "The job %s was not found.", clip(id))
	}
	c := *j
	return &c, nil
}

// start registers a job, refusing a second one on the same pool.
func (s *Service) start(p *Pool, kind string) (*Job, error) {
	st := s.jobsState()
	st.mu.Lock()
	defer st.mu.Unlock()
	if id, busy := st.running[strings.ToLower(p.Name)]; busy {
		return nil, fail(errs.Conflict, "OperationInProgress", "Another backup or restore (%s) is running on this managed HSM; one runs at a time.", id)
	}
	j := &Job{ID: strings.ReplaceAll(newGUID(), "-", ""), Kind: kind, Pool: p.Name, Status: InProgress,
		StatusDetails: "The job is running.", Start: s.clock.Now().UTC()}
	st.running[strings.ToLower(p.Name)] = j.ID
	st.jobs[j.ID] = j
	return j, nil
}

func (s *Service) finish(j *Job, details, uri string, err error) {
	st := s.jobsState()
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.running, strings.ToLower(j.Pool))
	j.End = s.clock.Now().UTC()
	if err != nil {
		j.Status, j.StatusDetails, j.ErrCode, j.ErrMsg = Failed, "The job failed.", "Failed", err.Error()
		if e, ok := err.(*Error); ok {
			j.ErrCode = e.Code
		}
		return
	}
	j.Status, j.StatusDetails, j.ContainerURI = Succeeded, details, uri
}

func backupKey(secret []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, secret, nil, "keyward managed HSM full backup v1", 32)
}

type backupFile struct {
	Version int       `json:"version"`
	Pool    string    `json:"pool"`
	Created time.Time `json:"created"`
	Nonce   []byte    `json:"nonce"`
	Data    []byte    `json:"data"`
}

const backupBlob = "backup.kwbak"

var backupAAD = []byte("keyward-mhsm-backup-v1")

func (s *Service) open(ctx context.Context, uri, token string) (BlobStore, error) {
	if s.opener == nil {
		return nil, fail(errs.BadParameter, "BackupUnavailable", "Backups are not configured on this Keyward instance.")
	}
	st, err := s.opener(ctx, uri, token)
	if err != nil {
		return nil, fail(errs.BadParameter, "InvalidStorage", "The storage container cannot be used: %s", clip(err.Error()))
	}
	return st, nil
}

// StartBackup starts a full backup of p into the container uri (SAS
// token token); its folder is mhsm-{pool}-{time}.
func (s *Service) StartBackup(ctx context.Context, p *Pool, uri, token string) (*Job, error) {
	secret, err := s.domainSecret(ctx, p)
	if err != nil {
		return nil, err
	}
	st, err := s.open(ctx, uri, token)
	if err != nil {
		clear(secret)
		return nil, err
	}
	j, err := s.start(p, JobBackup)
	if err != nil {
		clear(secret)
		return nil, err
	}
	go func() {
		defer clear(secret)
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
		defer cancel()
		folder := fmt.Sprintf("mhsm-%s-%s", strings.ToLower(p.Name), j.Start.Format("2006010215040500"))
		err := s.writeBackup(ctx, p, st, folder, secret)
		s.finish(j, "The backup completed.", st.URI()+"/"+folder, err)
	}()
	c := *j
	return &c, nil
}

func (s *Service) writeBackup(ctx context.Context, p *Pool, st BlobStore, folder string, secret []byte) error {
	recs, err := s.vaults.ExportPoolKeys(ctx, &p.Container, "")
	if err != nil {
		return err
	}
	plain, err := json.Marshal(recs)
	for _, r := range recs {
		clear(r)
	}
	if err != nil {
		return err
	}
	defer clear(plain)
	k, err := backupKey(secret)
	if err != nil {
		return err
	}
	defer clear(k)
	b, _ := aes.NewCipher(k)
	g, _ := cipher.NewGCMWithRandomNonce(b)
	sealed := g.Seal(nil, nil, plain, backupAAD)
	raw, err := json.Marshal(backupFile{Version: 1, Pool: p.Name, Created: s.clock.Now().UTC(), Data: sealed})
	if err != nil {
		return err
	}
	return st.Put(ctx, folder+"/"+backupBlob, raw)
}

// StartRestore starts a full restore (key "") or the selective restore of
// key from the backup in folder of container uri.
func (s *Service) StartRestore(ctx context.Context, p *Pool, uri, token, folder, key string) (*Job, error) {
	if folder == "" || strings.Contains(folder, "..") || len(folder) > 200 {
		return nil, fail(errs.BadParameter, "BadParameter", "folderToRestore must name the backup's folder.")
	}
	secret, err := s.domainSecret(ctx, p)
	if err != nil {
		return nil, err
	}
	st, err := s.open(ctx, uri, token)
	if err != nil {
		clear(secret)
		return nil, err
	}
	kind := JobRestore
	if key != "" {
		kind = JobSelective
	}
	j, err := s.start(p, kind)
	if err != nil {
		clear(secret)
		return nil, err
	}
	go func() {
		defer clear(secret)
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
		defer cancel()
		n, err := s.readRestore(ctx, p, st, strings.Trim(folder, "/"), secret, key)
		s.finish(j, fmt.Sprintf("The restore completed: %d keys.", n), "", err)
	}()
	c := *j
	return &c, nil
}

func (s *Service) readRestore(ctx context.Context, p *Pool, st BlobStore, folder string, secret []byte, key string) (int, error) {
	raw, err := st.Get(ctx, folder+"/"+backupBlob)
	if err != nil {
		return 0, fail(errs.BadParameter, "BackupNotFound", "The backup %s cannot be read: %s", clip(folder), clip(err.Error()))
	}
	var f backupFile
	if err := json.Unmarshal(raw, &f); err != nil || f.Version != 1 {
		return 0, fail(errs.BadParameter, "InvalidBackup", "The folder does not hold a Keyward managed HSM backup.")
	}
	k, err := backupKey(secret)
	if err != nil {
		return 0, err
	}
	defer clear(k)
	b, _ := aes.NewCipher(k)
	g, _ := cipher.NewGCMWithRandomNonce(b)
	plain, err := g.Open(nil, nil, f.Data, backupAAD)
	if err != nil {
		return 0, fail(errs.BadParameter, "InvalidBackup", "The backup was made under another security domain: this managed HSM cannot open it.")
	}
	defer clear(plain)
	var recs []vault.PoolKeyRecord
	if err := json.Unmarshal(plain, &recs); err != nil {
		return 0, fail(errs.BadParameter, "InvalidBackup", "The backup is damaged.")
	}
	return s.vaults.ImportPoolKeys(ctx, &p.Container, recs, key)
}
