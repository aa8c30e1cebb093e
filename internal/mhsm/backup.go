package mhsm

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/errs"
	"github.com/keyward/keyward/internal/storage"
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
	JobBackup     = "backup"
	JobRestore    = "restore"
	JobSelective  = "selective"
	JobPreBackup  = "prebackup"
	JobPreRestore = "prerestore"

	InProgress = "InProgress"
	Succeeded  = "Succeeded"
	Failed     = "Failed"
)

// Job is a backup or restore and its progress. Jobs are stored in the
// pool's barrier view (mhsm/job/{id}), next to the pool's one-at-a-time
// lock (mhsm/jobrun), so any node of an HA deployment, or the same node
// after a restart, answers a status poll.
type Job struct {
	ID            string    `json:"id"`
	Kind          string    `json:"kind"`
	Pool          string    `json:"pool"`
	Status        string    `json:"status"`
	StatusDetails string    `json:"statusDetails"`
	ErrCode       string    `json:"errorCode,omitempty"`
	ErrMsg        string    `json:"errorMessage,omitempty"`
	Start         time.Time `json:"start"`
	End           time.Time `json:"end,omitzero"`
	ContainerURI  string    `json:"containerUri,omitempty"` // backup: the folder's URI
}

// jobLimit bounds a job's run (its context's deadline). A job still
// InProgress in storage jobGrace after that was abandoned: the node
// running it stopped before it could record the end.
const (
	jobLimit = 10 * time.Minute
	jobGrace = time.Minute
)

const jobRunKey = "mhsm/jobrun"

// jobKeep is how long an ended job's status stays readable; older ones
// are removed when the pool's next job starts.
const jobKeep = 30 * 24 * time.Hour

func jobKey(id string) string { return "mhsm/job/" + strings.ToLower(id) }

// abandoned reports whether j can no longer end on its own, and if so
// words it as failed.
func (s *Service) abandoned(j *Job) bool {
	if j.Status != InProgress || s.clock.Now().Before(j.Start.Add(jobLimit+jobGrace)) {
		return false
	}
	j.Status, j.StatusDetails = Failed, "The job failed."
	j.ErrCode, j.ErrMsg = "JobAbandoned", "The node running the job stopped before the job ended; nothing was restored or the backup is incomplete. Start it again."
	j.End = j.Start.Add(jobLimit + jobGrace)
	return true
}

func getJob(tx barrier.Tx, id string) (*Job, error) {
	raw, err := tx.Get(jobKey(id))
	if err != nil {
		return nil, err
	}
	j := new(Job)
	if err := json.Unmarshal(raw, j); err != nil {
		return nil, err
	}
	return j, nil
}

func putJob(tx barrier.Tx, j *Job) error {
	raw, err := json.Marshal(j)
	if err != nil {
		return err
	}
	return tx.Put(jobKey(j.ID), raw)
}

// Job returns a job of pool p; with kinds, only a job of one of them (a
// status route serves its own kinds, under its own data action).
func (s *Service) Job(ctx context.Context, p *Pool, id string, kinds ...string) (*Job, error) {
	notFound := fail(errs.NotFound, "JobNotFound", "The job %s was not found.", clip(id))
	if id == "" || len(id) > 64 || strings.ContainsAny(id, "/") {
		return nil, notFound
	}
	var j *Job
	err := s.view(p).View(ctx, func(tx barrier.Tx) error {
		var err error
		j, err = getJob(tx, id)
		return err
	})
	if errors.Is(err, storage.ErrNotFound) || err == nil && !strings.EqualFold(j.Pool, p.Name) {
		return nil, notFound
	}
	if err != nil {
		return nil, err
	}
	if len(kinds) > 0 && !slices.Contains(kinds, j.Kind) {
		return nil, notFound
	}
	s.abandoned(j)
	return j, nil
}

// start records a new job, refusing it while another one of the pool runs.
func (s *Service) start(ctx context.Context, p *Pool, kind string) (*Job, error) {
	j := &Job{ID: strings.ReplaceAll(newGUID(), "-", ""), Kind: kind, Pool: p.Name, Status: InProgress,
		StatusDetails: "The job is running.", Start: s.clock.Now().UTC()}
	err := s.view(p).Update(ctx, func(tx barrier.Tx) error {
		run, err := tx.Get(jobRunKey)
		switch {
		case err == nil:
			cur, err := getJob(tx, string(run))
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				return err
			}
			if err == nil && cur.Status == InProgress && !s.abandoned(cur) {
				return fail(errs.Conflict, "OperationInProgress", "Another backup or restore (%s) is running on this managed HSM; one runs at a time.", cur.ID)
			}
			if err == nil && cur.Status == Failed {
				if err := putJob(tx, cur); err != nil { // record the abandonment
					return err
				}
			}
		case !errors.Is(err, storage.ErrNotFound):
			return err
		}
		var old []string
		if err := tx.Scan("mhsm/job/", "", func(k string, val []byte) bool {
			var e Job
			if json.Unmarshal(val, &e) == nil && !e.End.IsZero() && j.Start.Sub(e.End) > jobKeep {
				old = append(old, k)
			}
			return true
		}); err != nil {
			return err
		}
		for _, k := range old {
			if err := tx.Delete(k); err != nil {
				return err
			}
		}
		if err := putJob(tx, j); err != nil {
			return err
		}
		return tx.Put(jobRunKey, []byte(j.ID))
	})
	if err != nil {
		return nil, err
	}
	return j, nil
}

// finish records j's end and releases the pool's lock. It writes with a
// fresh context: the job's own may have ended with its deadline.
func (s *Service) finish(p *Pool, j *Job, details, uri string, jerr error) {
	j.End = s.clock.Now().UTC()
	if jerr != nil {
		j.Status, j.StatusDetails, j.ErrCode, j.ErrMsg = Failed, "The job failed.", "Failed", jerr.Error()
		var me *Error
		var ve *vault.Error
		switch {
		case errors.As(jerr, &me):
			j.ErrCode = me.Code
		case errors.As(jerr, &ve) && ve.Inner != "":
			j.ErrCode = ve.Inner
		case errs.KindOf(jerr) == errs.Conflict:
			j.ErrCode = "Conflict"
		case errs.KindOf(jerr) == errs.BadParameter:
			j.ErrCode = "BadParameter"
		}
	} else {
		j.Status, j.StatusDetails, j.ContainerURI = Succeeded, details, uri
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := s.view(p).Update(ctx, func(tx barrier.Tx) error {
		if err := putJob(tx, j); err != nil {
			return err
		}
		if run, err := tx.Get(jobRunKey); err == nil && strings.EqualFold(string(run), j.ID) {
			return tx.Delete(jobRunKey)
		}
		return nil
	})
	if err != nil && s.log != nil {
		s.log("managed HSM job end not recorded", "pool", p.Name, "job", j.ID, "err", err)
	}
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
		// The opener's message is its own words (never the SAS token),
		// with the container's host at most: room for a reason.
		msg := err.Error()
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		return nil, fail(errs.BadParameter, "InvalidStorage", "The storage container cannot be used: %s", msg)
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
	j, err := s.start(ctx, p, JobBackup)
	if err != nil {
		clear(secret)
		return nil, err
	}
	go func() {
		defer clear(secret)
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jobLimit)
		defer cancel()
		folder := fmt.Sprintf("mhsm-%s-%s", strings.ToLower(p.Name), j.Start.Format("2006010215040500"))
		err := s.writeBackup(ctx, p, st, folder, secret)
		s.finish(p, j, "The backup completed.", st.URI()+"/"+folder, err)
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
	j, err := s.start(ctx, p, kind)
	if err != nil {
		clear(secret)
		return nil, err
	}
	go func() {
		defer clear(secret)
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jobLimit)
		defer cancel()
		n, err := s.readRestore(ctx, p, st, strings.Trim(folder, "/"), secret, key)
		var me *Error
		if key != "" && (err == nil && n == 0 || errs.KindOf(err) == errs.NotFound && !errors.As(err, &me)) {
			err = fail(errs.NotFound, "KeyNotFound", "The backup holds no key named %s.", clip(key))
		}
		s.finish(p, j, fmt.Sprintf("The restore completed: %d keys.", n), "", err)
	}()
	c := *j
	return &c, nil
}

func (s *Service) readRestore(ctx context.Context, p *Pool, st BlobStore, folder string, secret []byte, key string) (int, error) {
	recs, err := s.openBackup(ctx, st, folder, secret)
	if err != nil {
		return 0, err
	}
	return s.vaults.ImportPoolKeys(ctx, &p.Container, recs, key)
}

// openBackup reads and opens the backup in folder.
func (s *Service) openBackup(ctx context.Context, st BlobStore, folder string, secret []byte) ([]vault.PoolKeyRecord, error) {
	raw, err := st.Get(ctx, folder+"/"+backupBlob)
	if err != nil {
		return nil, fail(errs.BadParameter, "BackupNotFound", "The backup %s cannot be read: %s", clip(folder), clip(err.Error()))
	}
	var f backupFile
	if err := json.Unmarshal(raw, &f); err != nil || f.Version != 1 {
		return nil, fail(errs.BadParameter, "InvalidBackup", "The folder does not hold a Keyward managed HSM backup.")
	}
	k, err := backupKey(secret)
	if err != nil {
		return nil, err
	}
	defer clear(k)
	b, _ := aes.NewCipher(k)
	g, _ := cipher.NewGCMWithRandomNonce(b)
	plain, err := g.Open(nil, nil, f.Data, backupAAD)
	if err != nil {
		return nil, fail(errs.BadParameter, "InvalidBackup", "The backup was made under another security domain: this managed HSM cannot open it.")
	}
	defer clear(plain)
	var recs []vault.PoolKeyRecord
	if err := json.Unmarshal(plain, &recs); err != nil {
		return nil, fail(errs.BadParameter, "InvalidBackup", "The backup is damaged.")
	}
	return recs, nil
}

// prebackupProbe is the blob a pre-backup check writes (and rewrites on
// every check) to prove the SAS token lets this managed HSM write there.
const prebackupProbe = "keyward-prebackup-check"

// StartPreBackup starts the check that a full backup of p into container
// uri can run (azadmin BeginPreFullBackup): the pool holds its security
// domain, no other job runs, and the container takes a write.
func (s *Service) StartPreBackup(ctx context.Context, p *Pool, uri, token string) (*Job, error) {
	secret, err := s.domainSecret(ctx, p)
	if err != nil {
		return nil, err
	}
	clear(secret)
	st, err := s.open(ctx, uri, token)
	if err != nil {
		return nil, err
	}
	j, err := s.start(ctx, p, JobPreBackup)
	if err != nil {
		return nil, err
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jobLimit)
		defer cancel()
		note, _ := json.Marshal(map[string]any{"pool": p.Name, "checked": s.clock.Now().UTC()})
		err := st.Put(ctx, prebackupProbe, note)
		if err != nil {
			err = fail(errs.BadParameter, "InvalidStorage", "The storage container does not take a write: %s", clip(err.Error()))
		}
		s.finish(p, j, "A full backup can run.", "", err)
	}()
	c := *j
	return &c, nil
}

// StartPreRestore starts the check that the backup in folder can be
// restored into p (azadmin BeginPreFullRestore): it is read and opened
// under p's security domain; nothing is written.
func (s *Service) StartPreRestore(ctx context.Context, p *Pool, uri, token, folder string) (*Job, error) {
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
	j, err := s.start(ctx, p, JobPreRestore)
	if err != nil {
		clear(secret)
		return nil, err
	}
	go func() {
		defer clear(secret)
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jobLimit)
		defer cancel()
		recs, err := s.openBackup(ctx, st, strings.Trim(folder, "/"), secret)
		for _, r := range recs {
			clear(r)
		}
		s.finish(p, j, fmt.Sprintf("The backup can be restored: %d keys.", len(recs)), "", err)
	}()
	c := *j
	return &c, nil
}
