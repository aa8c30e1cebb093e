package e2e

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/kwtest"
)

// TestManagedHSMJobStatusRoutes: a job's status is read through the route
// of its kind, under that kind's data action. A caller holding only
// restore/status/action (Managed HSM Restore) must not read a backup job
// (its container and folder) through /restore/{job}/pending.
func TestManagedHSMJobStatusRoutes(t *testing.T) {
	dir := t.TempDir()
	e := kwtest.Start(t, kwtest.Options{DataDir: dir})
	st, raw := hsmCall(t, e, e.Credential(), "dev", http.MethodPost, "/backup",
		map[string]any{"storageResourceUri": "file://" + filepath.Join(dir, "backups", "c"), "token": ""})
	if st != http.StatusAccepted {
		t.Fatalf("backup: %d %s", st, raw)
	}
	j := waitJob(t, e, "dev", "backup", raw)
	if j["status"] != "Succeeded" {
		t.Fatalf("backup job: %v", j)
	}
	id, _ := j["jobId"].(string)
	restorer := newSP(t, e, "hsm-restorer")
	st, raw = hsmCall(t, e, e.Credential(), "dev", http.MethodPut, "/providers/Microsoft.Authorization/roleAssignments/"+newGUID(), map[string]any{
		"properties": map[string]any{"roleDefinitionId": "Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/" + authz.RoleHSMRestore, "principalId": restorer.ObjectID}})
	if st != http.StatusCreated {
		t.Fatalf("assign Managed HSM Restore: %d %s", st, raw)
	}
	if st, raw := hsmCall(t, e, restorer.Cred, "dev", http.MethodGet, "/backup/"+id+"/pending", nil); st != http.StatusForbidden {
		t.Errorf("restorer reads the backup job on the backup route: %d %s", st, raw)
	}
	st, raw = hsmCall(t, e, restorer.Cred, "dev", http.MethodGet, "/restore/"+id+"/pending", nil)
	if st != http.StatusNotFound || !strings.Contains(string(raw), "JobNotFound") || strings.Contains(string(raw), "file://") {
		t.Errorf("restorer reads the backup job on the restore route: %d %s", st, raw)
	}
	// The administrator reads it where it belongs, and not on the other route.
	if st, raw := hsmCall(t, e, e.Credential(), "dev", http.MethodGet, "/backup/"+id+"/pending", nil); st != http.StatusOK {
		t.Errorf("backup route: %d %s", st, raw)
	}
	if st, raw := hsmCall(t, e, e.Credential(), "dev", http.MethodGet, "/restore/"+id+"/pending", nil); st != http.StatusNotFound {
		t.Errorf("a backup job on the restore route: %d %s", st, raw)
	}
}
