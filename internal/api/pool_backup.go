package api

import (
	"net/http"

	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/mhsm"
)

// Full backup, full restore and selective key restore (azadmin/backup,
// AZURE-API.md §5): 202 with Azure-AsyncOperation, polled at
// /backup|restore/{jobId}/pending.

func poolBackupRoutes() []kwroute {
	const o = "backup"
	return []kwroute{
		{Method: http.MethodPost, Pattern: "/backup", Op: "HSMFullBackup", Object: o, Action: authz.HSMBackupStart, Handle: startBackup},
		{Method: http.MethodGet, Pattern: "/backup/{job}/pending", Op: "HSMFullBackupStatus", Object: o, Action: authz.HSMBackupStatus, Handle: jobStatus(mhsm.JobBackup, mhsm.JobPreBackup)},
		{Method: http.MethodPut, Pattern: "/restore", Op: "HSMFullRestore", Object: o, Action: authz.HSMRestoreStart, Handle: startRestore},
		{Method: http.MethodGet, Pattern: "/restore/{job}/pending", Op: "HSMRestoreStatus", Object: o, Action: authz.HSMRestoreStatus, Handle: jobStatus(mhsm.JobRestore, mhsm.JobSelective, mhsm.JobPreRestore)},
		{Method: http.MethodPut, Pattern: "/keys/{name}/restore", Op: "HSMSelectiveKeyRestore", Object: "keys", Action: authz.HSMKeysRestore, Handle: startSelectiveRestore},
		{Method: http.MethodPost, Pattern: "/prebackup", Op: "HSMPreFullBackup", Object: o, Action: authz.HSMBackupStart, Handle: startPreBackup},
		{Method: http.MethodPut, Pattern: "/prerestore", Op: "HSMPreFullRestore", Object: o, Action: authz.HSMRestoreStart, Handle: startPreRestore},
	}
}

type sasWire struct {
	StorageResourceURI string `json:"storageResourceUri"`
	Token              string `json:"token"`
	UseManagedIdentity bool   `json:"useManagedIdentity"`
}

type jobErrWire struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type jobWire struct {
	Status        string      `json:"status"`
	StatusDetails string      `json:"statusDetails,omitempty"`
	Error         *jobErrWire `json:"error,omitempty"`
	StartTime     int64       `json:"startTime"`
	EndTime       *int64      `json:"endTime,omitempty"`
	JobID         string      `json:"jobId"`
	ContainerURI  string      `json:"azureStorageBlobContainerUri,omitempty"`
}

func jobOut(j *mhsm.Job) jobWire {
	w := jobWire{Status: j.Status, StatusDetails: j.StatusDetails, StartTime: j.Start.Unix(), JobID: j.ID, ContainerURI: j.ContainerURI}
	if !j.End.IsZero() {
		e := j.End.Unix()
		w.EndTime = &e
	}
	if j.Status == mhsm.Failed {
		w.Error = &jobErrWire{Code: j.ErrCode, Message: j.ErrMsg}
	}
	return w
}

func (rq *request) replyJob(kind string, j *mhsm.Job) error {
	rq.asyncOp("/" + kind + "/" + j.ID + "/pending")
	return rq.reply(http.StatusAccepted, jobOut(j))
}

func (b *sasWire) check() error {
	if b.UseManagedIdentity {
		return badParam("useManagedIdentity is not supported: give a SAS token.")
	}
	if b.StorageResourceURI == "" {
		return badParam("storageResourceUri is required.")
	}
	return nil
}

// decodeBackup reads a backup's body: the SAS parameters themselves.
func (rq *request) decodeBackup() (*sasWire, error) {
	var b sasWire
	if err := rq.decode(&b); err != nil {
		return nil, err
	}
	return &b, b.check()
}

// restoreWire is a restore's body. A full restore names its folder
// folderToRestore, a selective key restore folder.
type restoreWire struct {
	SAS       *sasWire `json:"sasTokenParameters"`
	Folder    string   `json:"folderToRestore"`
	KeyFolder string   `json:"folder"`
}

func (rq *request) decodeRestore() (*restoreWire, error) {
	var b restoreWire
	if err := rq.decode(&b); err != nil {
		return nil, err
	}
	if b.SAS == nil {
		return nil, badParam("sasTokenParameters is required.")
	}
	return &b, b.SAS.check()
}

func startBackup(rq *request) error {
	b, err := rq.decodeBackup()
	if err != nil {
		return err
	}
	j, err := rq.h.pools.StartBackup(rq.r.Context(), rq.pool, b.StorageResourceURI, b.Token)
	if err != nil {
		return err
	}
	return rq.replyJob("backup", j)
}

// startPreBackup is the 7.6 pre-flight check of a full backup (azadmin
// BeginPreFullBackup), polled like a backup.
func startPreBackup(rq *request) error {
	b, err := rq.decodeBackup()
	if err != nil {
		return err
	}
	j, err := rq.h.pools.StartPreBackup(rq.r.Context(), rq.pool, b.StorageResourceURI, b.Token)
	if err != nil {
		return err
	}
	return rq.replyJob("backup", j)
}

// startPreRestore is the 7.6 pre-flight check of a full restore (azadmin
// BeginPreFullRestore), polled like a restore.
func startPreRestore(rq *request) error {
	b, err := rq.decodeRestore()
	if err != nil {
		return err
	}
	j, err := rq.h.pools.StartPreRestore(rq.r.Context(), rq.pool, b.SAS.StorageResourceURI, b.SAS.Token, b.Folder)
	if err != nil {
		return err
	}
	return rq.replyJob("restore", j)
}

func startRestore(rq *request) error {
	b, err := rq.decodeRestore()
	if err != nil {
		return err
	}
	j, err := rq.h.pools.StartRestore(rq.r.Context(), rq.pool, b.SAS.StorageResourceURI, b.SAS.Token, b.Folder, "")
	if err != nil {
		return err
	}
	return rq.replyJob("restore", j)
}

func startSelectiveRestore(rq *request) error {
	b, err := rq.decodeRestore()
	if err != nil {
		return err
	}
	j, err := rq.h.pools.StartRestore(rq.r.Context(), rq.pool, b.SAS.StorageResourceURI, b.SAS.Token, b.KeyFolder, rq.params["name"])
	if err != nil {
		return err
	}
	return rq.replyJob("restore", j)
}

// jobStatus serves a status route: only jobs of its kinds, so that each
// kind's status is read under its own data action.
func jobStatus(kinds ...string) func(*request) error {
	return func(rq *request) error {
		j, err := rq.h.pools.Job(rq.r.Context(), rq.pool, rq.params["job"], kinds...)
		if err != nil {
			return err
		}
		return rq.reply(http.StatusOK, jobOut(j))
	}
}
