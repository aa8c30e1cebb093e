package e2e

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/storage/postgres/pgtest"
)

// The managed HSM administration endpoints driven the way the official
// azadmin module drives them. azadmin itself is not on this workplace's
// module proxy, and the workplace's rules keep a fetched copy of its source
// out of the repository, so this test rebuilds azadmin's client from the
// official parts it is made of: an azcore.Client with a bearer token
// policy for the managed HSM resource (azadmin's NewClient uses
// keyvault/internal's challenge policy, which a module outside the SDK
// cannot import; azkeys exercises that policy against pools), requests
// built as its generated code builds them (runtime.JoinPaths over
// "/{scope}/providers/…", api-version 2026-01-01-preview, the JSON field
// names of its models), azcore's own Azure-AsyncOperation poller for the
// full backup (BeginFullBackup uses runtime.NewPoller with
// FinalStateViaAzureAsyncOp) and, for restores, a polling handler with
// the rules of azadmin's hand-written restorePoller. Checked against
// azadmin 2026-01-01-preview sources (rbac/client.go, backup/client.go,
// backup/internal/pollers) and a service recording of the built-in role
// definitions (azure-sdk-for-js keyvault-admin, recorded against Azure).

const azadminAPIVersion = "2026-01-01-preview"

type adminClient struct {
	t    *testing.T
	base string
	c    *azcore.Client
}

func newAdminClient(t *testing.T, e *kwtest.Env, cred azcore.TokenCredential, pool string) *adminClient {
	t.Helper()
	opts := e.ClientOptions()
	c, err := azcore.NewClient("azadmin.Client", "v1.4.0", runtime.PipelineOptions{
		PerRetry: []policy.Policy{runtime.NewBearerTokenPolicy(cred, []string{hsmResource(e) + "/.default"}, nil)}}, &opts)
	if err != nil {
		t.Fatal(err)
	}
	return &adminClient{t: t, base: strings.TrimSuffix(poolURL(e, pool), "/"), c: c}
}

// do sends method to urlPath (azadmin's path template, filled in) with
// body, and returns the response, failing unless its status is want.
func (a *adminClient) do(ctx context.Context, method, urlPath string, body any, want int) *http.Response {
	a.t.Helper()
	resp, err := a.send(ctx, method, urlPath, body)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, urlPath, err)
	}
	if !runtime.HasStatusCode(resp, want) {
		a.t.Fatalf("%s %s: %v", method, urlPath, runtime.NewResponseError(resp))
	}
	return resp
}

func (a *adminClient) send(ctx context.Context, method, urlPath string, body any) (*http.Response, error) {
	req, err := runtime.NewRequest(ctx, method, runtime.JoinPaths(a.base, urlPath))
	if err != nil {
		return nil, err
	}
	qp := req.Raw().URL.Query()
	qp.Set("api-version", azadminAPIVersion)
	req.Raw().URL.RawQuery = qp.Encode()
	req.Raw().Header["Accept"] = []string{"application/json"}
	if body != nil {
		req.Raw().Header["Content-Type"] = []string{"application/json"}
		if err := runtime.MarshalAsJSON(req, body); err != nil {
			return nil, err
		}
	}
	return a.c.Pipeline().Do(req)
}

func (a *adminClient) decode(resp *http.Response, out any) {
	a.t.Helper()
	if err := runtime.UnmarshalAsJSON(resp, out); err != nil {
		a.t.Fatal(err)
	}
}

// azadmin's rbac models (JSON names as in rbac/models_serde.go).
type azPermission struct {
	Actions        []string `json:"actions"`
	DataActions    []string `json:"dataActions"`
	NotActions     []string `json:"notActions"`
	NotDataActions []string `json:"notDataActions"`
}

type azRoleDefinition struct {
	ID         *string `json:"id"`
	Name       *string `json:"name"`
	Type       *string `json:"type"`
	Properties *struct {
		AssignableScopes []string       `json:"assignableScopes"`
		Description      *string        `json:"description"`
		Permissions      []azPermission `json:"permissions"`
		RoleName         *string        `json:"roleName"`
		RoleType         *string        `json:"type"`
	} `json:"properties"`
}

type azRoleAssignment struct {
	ID         *string `json:"id"`
	Name       *string `json:"name"`
	Type       *string `json:"type"`
	Properties *struct {
		PrincipalID      *string `json:"principalId"`
		RoleDefinitionID *string `json:"roleDefinitionId"`
		Scope            *string `json:"scope"`
	} `json:"properties"`
}

// azadmin's backup models.
type azSAS struct {
	StorageResourceURI *string `json:"storageResourceUri"`
	Token              *string `json:"token,omitempty"`
	UseManagedIdentity *bool   `json:"useManagedIdentity,omitempty"`
}

type azJob struct {
	AzureStorageBlobContainerURI *string `json:"azureStorageBlobContainerUri"`
	EndTime                      *int64  `json:"endTime"`
	Error                        *struct {
		Code    *string `json:"code"`
		Message *string `json:"message"`
	} `json:"error"`
	JobID         *string `json:"jobId"`
	StartTime     *int64  `json:"startTime"`
	Status        *string `json:"status"`
	StatusDetails *string `json:"statusDetails"`
}

// restoreHandler is an azcore polling handler with the rules of azadmin's
// restorePoller (backup/internal/pollers/restore_poller.go): poll the
// absolute Azure-AsyncOperation URL; every poll answer needs a "status";
// "Succeeded" ends it with the poll body as the result, "Failed" or
// "Canceled" with an *azcore.ResponseError built from that body; no final
// GET (GET /restore is no resource).
type restoreHandler struct {
	pl       runtime.Pipeline
	asyncURL string
	state    string
	resp     *http.Response
}

func newRestoreHandler(pl runtime.Pipeline, resp *http.Response) (*restoreHandler, error) {
	u := resp.Header.Get("Azure-AsyncOperation")
	if u == "" {
		return nil, errors.New("response is missing Azure-AsyncOperation header")
	}
	if !strings.HasPrefix(u, "https://") {
		return nil, errors.New("invalid polling URL " + u)
	}
	return &restoreHandler{pl: pl, asyncURL: u, state: "InProgress", resp: resp}, nil
}

func (h *restoreHandler) Done() bool {
	return slices.ContainsFunc([]string{"Succeeded", "Failed", "Canceled"}, func(s string) bool { return strings.EqualFold(s, h.state) })
}

func (h *restoreHandler) Poll(ctx context.Context) (*http.Response, error) {
	req, err := runtime.NewRequest(ctx, http.MethodGet, h.asyncURL)
	if err != nil {
		return nil, err
	}
	resp, err := h.pl.Do(req)
	if err != nil {
		return nil, err
	}
	if !runtime.HasStatusCode(resp, http.StatusOK, http.StatusAccepted, http.StatusCreated, http.StatusNoContent) {
		return nil, runtime.NewResponseError(resp)
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := runtime.UnmarshalAsJSON(resp, &st); err != nil {
		return nil, err
	}
	if st.Status == "" {
		return nil, errors.New("the response did not contain a status")
	}
	h.state, h.resp = st.Status, resp
	return resp, nil
}

func (h *restoreHandler) Result(ctx context.Context, out *azJob) error {
	if strings.EqualFold(h.state, "Failed") || strings.EqualFold(h.state, "Canceled") {
		return runtime.NewResponseError(h.resp)
	}
	return runtime.UnmarshalAsJSON(h.resp, out)
}

func (a *adminClient) restore(ctx context.Context, urlPath string, body any) (azJob, error) {
	a.t.Helper()
	resp := a.do(ctx, http.MethodPut, urlPath, body, http.StatusAccepted)
	h, err := newRestoreHandler(a.c.Pipeline(), resp)
	if err != nil {
		a.t.Fatal(err)
	}
	p, err := runtime.NewPoller(resp, a.c.Pipeline(), &runtime.NewPollerOptions[azJob]{Handler: h})
	if err != nil {
		a.t.Fatal(err)
	}
	return p.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 50 * time.Millisecond})
}

// Built-in role definitions and their data actions as Azure returns them
// (the recording named above; Restore from Azure's "Local RBAC built-in
// roles for Managed HSM" table, which the recording predates).
var azureBuiltIns = map[string][]string{
	authz.RoleHSMAdministrator: {"roleAssignments/delete/action", "roleAssignments/read/action", "roleAssignments/write/action",
		"roleDefinitions/read/action", "roleDefinitions/write/action", "roleDefinitions/delete/action",
		"securitydomain/download/action", "securitydomain/download/read", "securitydomain/upload/action", "securitydomain/upload/read",
		"securitydomain/transferkey/read", "backup/start/action", "restore/start/action", "backup/status/action", "restore/status/action"},
	authz.RoleHSMCryptoOfficer: {"roleAssignments/delete/action", "roleAssignments/read/action", "roleAssignments/write/action",
		"roleDefinitions/read/action", "roleDefinitions/write/action", "roleDefinitions/delete/action",
		"keys/deletedKeys/read/action", "keys/deletedKeys/delete", "keys/deletedKeys/recover/action", "keys/export/action"},
	authz.RoleHSMCryptoUser: {"roleDefinitions/read/action", "roleAssignments/read/action", "keys/read/action", "keys/write/action",
		"keys/delete", "keys/create", "keys/rotate/action", "keys/import/action", "keys/release/action", "keys/backup/action",
		"keys/restore/action", "keys/encrypt/action", "keys/decrypt/action", "keys/wrap/action", "keys/unwrap/action",
		"keys/sign/action", "keys/verify/action", "keys/derive/action", "rng/action"},
	authz.RoleHSMPolicyAdministrator: {"roleDefinitions/read/action", "roleDefinitions/write/action", "roleDefinitions/delete/action",
		"roleAssignments/read/action", "roleAssignments/write/action", "roleAssignments/delete/action"},
	authz.RoleHSMCryptoAuditor: {"roleAssignments/read/action", "roleDefinitions/read/action", "keys/read/action",
		"keys/deletedKeys/read/action"},
	authz.RoleHSMCryptoServiceEncUser: {"keys/read/action", "keys/wrap/action", "keys/unwrap/action"},
	authz.RoleHSMCryptoServiceRelease: {"keys/release/action"},
	authz.RoleHSMBackup:               {"backup/start/action", "backup/status/action", "keys/backup/action"},
	authz.RoleHSMRestore:              {"keys/restore/action", "restore/start/action", "restore/status/action"},
}

func TestManagedHSMAzadminPipeline(t *testing.T) {
	curl, token := azurite(t)
	e := kwtest.Start(t, kwtest.Options{HSM: true})
	ctx := context.Background()
	a := newAdminClient(t, e, e.Credential(), "dev")
	const rdPath, raPath = "/providers/Microsoft.Authorization/roleDefinitions", "/providers/Microsoft.Authorization/roleAssignments"
	scoped := func(scope, p string) string { return strings.ReplaceAll("/{scope}"+p, "{scope}", scope) }

	// rbac: NewListRoleDefinitionsPager(RoleScopeGlobal) — every built-in
	// role with Azure's data actions.
	var defs struct {
		Value    []azRoleDefinition `json:"value"`
		NextLink *string            `json:"nextLink"`
	}
	a.decode(a.do(ctx, http.MethodGet, scoped("/", rdPath), nil, http.StatusOK), &defs)
	seen := map[string]bool{}
	for _, d := range defs.Value {
		want, ok := azureBuiltIns[*d.Name]
		if !ok {
			continue
		}
		seen[*d.Name] = true
		if *d.ID != "Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/"+*d.Name ||
			*d.Type != "Microsoft.Authorization/roleDefinitions" || *d.Properties.RoleType != "AKVBuiltInRole" {
			t.Errorf("role definition %s: id %s type %s roleType %s", *d.Name, *d.ID, *d.Type, *d.Properties.RoleType)
		}
		var got []string
		for _, p := range d.Properties.Permissions {
			for _, x := range p.DataActions {
				got = append(got, strings.TrimPrefix(x, "Microsoft.KeyVault/managedHsm/"))
			}
		}
		slices.Sort(got)
		w := slices.Sorted(slices.Values(want))
		if !slices.Equal(got, w) {
			t.Errorf("%s (%s) data actions:\n got %v\nwant %v", *d.Properties.RoleName, *d.Name, got, w)
		}
	}
	if len(seen) != len(azureBuiltIns) {
		t.Errorf("built-in roles listed: %v", seen)
	}
	var keysDefs struct {
		Value []azRoleDefinition `json:"value"`
	}
	a.decode(a.do(ctx, http.MethodGet, scoped("/keys", rdPath), nil, http.StatusOK), &keysDefs)
	if len(keysDefs.Value) != len(defs.Value) {
		t.Errorf("role definitions at /keys: %d, at /: %d", len(keysDefs.Value), len(defs.Value))
	}

	// CreateOrUpdateRoleDefinition (201), GetRoleDefinition, then a
	// CreateRoleAssignment of it at /keys (201), GetRoleAssignment,
	// DeleteRoleAssignment and DeleteRoleDefinition (200, the deleted object).
	roleID, asgID, principal := newGUID(), newGUID(), newGUID()
	var rd azRoleDefinition
	a.decode(a.do(ctx, http.MethodPut, scoped("/", rdPath+"/"+roleID), map[string]any{"properties": map[string]any{
		"roleName": "Key Reader", "description": "reads keys", "type": "CustomRole", "assignableScopes": []string{"/"},
		"permissions": []map[string]any{{"dataActions": []string{string(authz.HSMKeysRead)}}}}}, http.StatusCreated), &rd)
	if *rd.Name != roleID || *rd.Properties.RoleType != "CustomRole" || *rd.Properties.RoleName != "Key Reader" {
		t.Errorf("created role definition: %+v", rd)
	}
	a.decode(a.do(ctx, http.MethodGet, scoped("/", rdPath+"/"+roleID), nil, http.StatusOK), &rd)
	if len(rd.Properties.Permissions) != 1 || !slices.Equal(rd.Properties.Permissions[0].DataActions, []string{string(authz.HSMKeysRead)}) {
		t.Errorf("got role definition: %+v", rd.Properties)
	}
	var ra azRoleAssignment
	a.decode(a.do(ctx, http.MethodPut, scoped("/keys", raPath+"/"+asgID), map[string]any{"properties": map[string]any{
		"roleDefinitionId": *rd.ID, "principalId": principal}}, http.StatusCreated), &ra)
	if *ra.Name != asgID || *ra.Properties.Scope != "/keys" || *ra.Properties.PrincipalID != principal || *ra.Properties.RoleDefinitionID != *rd.ID {
		t.Errorf("created role assignment: %+v %+v", ra, ra.Properties)
	}
	a.decode(a.do(ctx, http.MethodGet, scoped("/keys", raPath+"/"+asgID), nil, http.StatusOK), &ra)
	if *ra.Properties.PrincipalID != principal {
		t.Errorf("got role assignment: %+v", ra.Properties)
	}
	var ras struct {
		Value []azRoleAssignment `json:"value"`
	}
	a.decode(a.do(ctx, http.MethodGet, scoped("/keys", raPath), nil, http.StatusOK), &ras)
	if !slices.ContainsFunc(ras.Value, func(x azRoleAssignment) bool { return *x.Name == asgID }) {
		t.Error("the assignment is not listed at /keys")
	}
	// An assigned role cannot be deleted; the error reaches azcore as a
	// ResponseError (Key Vault's shape: code Conflict, the reason in
	// innererror).
	resp, err := a.send(ctx, http.MethodDelete, scoped("/", rdPath+"/"+roleID), nil)
	if err != nil {
		t.Fatal(err)
	}
	var re *azcore.ResponseError
	if !errors.As(runtime.NewResponseError(resp), &re) || re.StatusCode != http.StatusConflict || re.ErrorCode != "Conflict" ||
		!strings.Contains(re.Error(), "RoleDefinitionHasAssignments") {
		t.Errorf("deleting an assigned role: %v", re)
	}
	a.decode(a.do(ctx, http.MethodDelete, scoped("/keys", raPath+"/"+asgID), nil, http.StatusOK), &ra)
	a.decode(a.do(ctx, http.MethodDelete, scoped("/", rdPath+"/"+roleID), nil, http.StatusOK), &rd)
	if *rd.Name != roleID {
		t.Errorf("deleted role definition: %+v", rd)
	}
	// Not found is {"error":{"code":"RoleAssignmentNotFound"}} on Azure
	// (the recording); role definitions answer alike.
	for _, p := range []string{scoped("/", rdPath+"/"+roleID), scoped("/keys", raPath+"/"+asgID)} {
		resp, err = a.send(ctx, http.MethodGet, p, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := map[bool]string{true: "RoleDefinitionNotFound", false: "RoleAssignmentNotFound"}[strings.Contains(p, "roleDefinitions")]
		if !errors.As(runtime.NewResponseError(resp), &re) || re.StatusCode != http.StatusNotFound || re.ErrorCode != want {
			t.Errorf("GET %s after delete: %v", p, re)
		}
	}

	// settings: GetSettings, GetSetting, UpdateSetting (PATCH {value}).
	type azSetting struct {
		Name  *string `json:"name"`
		Value *string `json:"value"`
		Type  *string `json:"type"`
	}
	var sl struct {
		Settings []azSetting `json:"settings"`
	}
	a.decode(a.do(ctx, http.MethodGet, "/settings", nil, http.StatusOK), &sl)
	if len(sl.Settings) == 0 || *sl.Settings[0].Name != "AllowKeyManagementOperationsThroughARM" || *sl.Settings[0].Type != "boolean" {
		t.Fatalf("settings: %+v", sl)
	}
	var s azSetting
	a.decode(a.do(ctx, http.MethodPatch, "/settings/AllowKeyManagementOperationsThroughARM", map[string]string{"value": "true"}, http.StatusOK), &s)
	a.decode(a.do(ctx, http.MethodGet, "/settings/AllowKeyManagementOperationsThroughARM", nil, http.StatusOK), &s)
	if *s.Value != "true" {
		t.Errorf("updated setting: %+v", s)
	}

	// backup: BeginPreFullBackup (POST /prebackup, azcore's poller like
	// BeginFullBackup): the container takes a write; a bad SAS fails.
	preBackup := func(tok string) (azJob, error) {
		resp := a.do(ctx, http.MethodPost, "/prebackup", azSAS{StorageResourceURI: &curl, Token: &tok}, http.StatusAccepted)
		p, err := runtime.NewPoller(resp, a.c.Pipeline(), &runtime.NewPollerOptions[azJob]{FinalStateVia: runtime.FinalStateViaAzureAsyncOp})
		if err != nil {
			t.Fatal(err)
		}
		return p.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 50 * time.Millisecond})
	}
	if job, err := preBackup(token); err != nil || *job.Status != "Succeeded" {
		t.Fatalf("pre-backup: %v %+v", err, job)
	}
	if _, err := preBackup(strings.Replace(token, "sig=", "sig=AAAA", 1)); !errors.As(err, &re) || re.ErrorCode != "InvalidStorage" {
		t.Errorf("pre-backup with a forged SAS: %v", err)
	}

	// backup: BeginFullBackup — azcore's own Azure-AsyncOperation poller.
	kc := keysFor(t, e, e.Info.ManagedHSMURL, e.Credential())
	if _, err := kc.CreateKey(ctx, "az-data", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOctHSM), KeySize: to.Ptr(int32(256))}, nil); err != nil {
		t.Fatal(err)
	}
	resp = a.do(ctx, http.MethodPost, "/backup", azSAS{StorageResourceURI: &curl, Token: &token}, http.StatusAccepted)
	bp, err := runtime.NewPoller(resp, a.c.Pipeline(), &runtime.NewPollerOptions[azJob]{FinalStateVia: runtime.FinalStateViaAzureAsyncOp})
	if err != nil {
		t.Fatal(err)
	}
	job, err := bp.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("full backup: %v", err)
	}
	if *job.Status != "Succeeded" || job.JobID == nil || job.StartTime == nil || job.EndTime == nil ||
		!strings.HasPrefix(*job.AzureStorageBlobContainerURI, curl+"/mhsm-dev-") {
		t.Fatalf("full backup result: %+v", job)
	}
	folder := (*job.AzureStorageBlobContainerURI)[len(curl)+1:]

	// BeginPreFullRestore (PUT /prerestore): the backup opens under this
	// pool's security domain; a missing folder fails; nothing is written.
	job, err = a.restore(ctx, "/prerestore", map[string]any{"folderToRestore": folder, "sasTokenParameters": azSAS{StorageResourceURI: &curl, Token: &token}})
	if err != nil || *job.Status != "Succeeded" || !strings.Contains(*job.StatusDetails, "can be restored") {
		t.Fatalf("pre-restore: %v %+v", err, job)
	}
	if _, err := a.restore(ctx, "/prerestore", map[string]any{"folderToRestore": "mhsm-none", "sasTokenParameters": azSAS{StorageResourceURI: &curl, Token: &token}}); !errors.As(err, &re) || re.ErrorCode != "BackupNotFound" {
		t.Errorf("pre-restore of a missing folder: %v", err)
	}

	purge := func(name string) {
		if _, err := kc.DeleteKey(ctx, name, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := kc.PurgeDeletedKey(ctx, name, nil); err != nil {
			t.Fatal(err)
		}
	}
	// BeginFullRestore (PUT /restore, restorePoller rules).
	purge("az-data")
	job, err = a.restore(ctx, "/restore", map[string]any{"folderToRestore": folder, "sasTokenParameters": azSAS{StorageResourceURI: &curl, Token: &token}})
	if err != nil || *job.Status != "Succeeded" {
		t.Fatalf("full restore: %v %+v", err, job)
	}
	if _, err := kc.GetKey(ctx, "az-data", "", nil); err != nil {
		t.Fatalf("the key is not back after a full restore: %v", err)
	}
	// BeginSelectiveKeyRestore (PUT /keys/{keyName}/restore).
	purge("az-data")
	job, err = a.restore(ctx, "/keys/az-data/restore", map[string]any{"folder": folder, "sasTokenParameters": azSAS{StorageResourceURI: &curl, Token: &token}})
	if err != nil || *job.Status != "Succeeded" {
		t.Fatalf("selective key restore: %v %+v", err, job)
	}
	if _, err := kc.GetKey(ctx, "az-data", "", nil); err != nil {
		t.Fatalf("the key is not back after a selective restore: %v", err)
	}
	// A restore that fails ends the poller with the job's error code.
	_, err = a.restore(ctx, "/keys/az-data/restore", map[string]any{"folder": folder, "sasTokenParameters": azSAS{StorageResourceURI: &curl, Token: &token}})
	if !errors.As(err, &re) || re.ErrorCode == "" || re.ErrorCode == "Failed" {
		t.Errorf("selective restore over a live key: %v", err)
	}
	_, err = a.restore(ctx, "/keys/not-in-backup/restore", map[string]any{"folder": folder, "sasTokenParameters": azSAS{StorageResourceURI: &curl, Token: &token}})
	if !errors.As(err, &re) || re.ErrorCode != "KeyNotFound" {
		t.Errorf("selective restore of a key the backup lacks: %v", err)
	}
	_, err = a.restore(ctx, "/restore", map[string]any{"folderToRestore": "mhsm-none", "sasTokenParameters": azSAS{StorageResourceURI: &curl, Token: &token}})
	if !errors.As(err, &re) || re.ErrorCode != "BackupNotFound" {
		t.Errorf("restore of a missing folder: %v", err)
	}
}

// A backup job's status outlives the process that ran it: after a
// restart, the same job ID polls as Succeeded with its folder (jobs are
// stored with the pool, not kept in memory).
func TestManagedHSMJobStatusAfterRestart(t *testing.T) {
	curl, token := azurite(t)
	dir := t.TempDir()
	e := kwtest.Start(t, kwtest.Options{DataDir: dir})
	ctx := context.Background()
	a := newAdminClient(t, e, e.Credential(), "dev")
	resp := a.do(ctx, http.MethodPost, "/backup", azSAS{StorageResourceURI: &curl, Token: &token}, http.StatusAccepted)
	asyncURL := resp.Header.Get("Azure-AsyncOperation")
	bp, err := runtime.NewPoller(resp, a.c.Pipeline(), &runtime.NewPollerOptions[azJob]{FinalStateVia: runtime.FinalStateViaAzureAsyncOp})
	if err != nil {
		t.Fatal(err)
	}
	before, err := bp.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 50 * time.Millisecond})
	if err != nil || *before.Status != "Succeeded" {
		t.Fatalf("backup: %v %+v", err, before)
	}
	e.Server.Close()

	e2 := kwtest.Start(t, kwtest.Options{DataDir: dir})
	a2 := newAdminClient(t, e2, e2.Credential(), "dev")
	// The same status URL on the new process (only the port changed).
	path := asyncURL[strings.Index(asyncURL, "/backup/"):strings.Index(asyncURL, "?")]
	var after azJob
	a2.decode(a2.do(ctx, http.MethodGet, path, nil, http.StatusOK), &after)
	if *after.Status != "Succeeded" || *after.JobID != *before.JobID || *after.AzureStorageBlobContainerURI != *before.AzureStorageBlobContainerURI ||
		*after.StartTime != *before.StartTime || *after.EndTime != *before.EndTime {
		t.Fatalf("job after restart: %+v, before: %+v", after, before)
	}
	// And the pool is free for the next job.
	resp = a2.do(ctx, http.MethodPost, "/backup", azSAS{StorageResourceURI: &curl, Token: &token}, http.StatusAccepted)
	bp, err = runtime.NewPoller(resp, a2.c.Pipeline(), &runtime.NewPollerOptions[azJob]{FinalStateVia: runtime.FinalStateViaAzureAsyncOp})
	if err != nil {
		t.Fatal(err)
	}
	if j, err := bp.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 50 * time.Millisecond}); err != nil || *j.Status != "Succeeded" {
		t.Fatalf("backup after restart: %v", err)
	}
}

// Two nodes on one PostgreSQL database: a backup started on one is polled
// to its end on the other, and the pool's one-at-a-time lock is released
// for both.
func TestManagedHSMJobStatusAcrossHANodes(t *testing.T) {
	curl, token := azurite(t)
	dsn := pgtest.Start(t).NewDatabase(t)
	na := kwtest.Start(t, kwtest.Options{Backend: "postgres", DSN: dsn})
	bDir := t.TempDir()
	copyDevFiles(t, na.DataDir, bDir)
	nb := kwtest.Start(t, kwtest.Options{Backend: "postgres", DSN: dsn, DataDir: bDir})
	ctx := context.Background()
	a := newAdminClient(t, na, na.Credential(), "dev")
	b := newAdminClient(t, nb, nb.Credential(), "dev")

	resp := a.do(ctx, http.MethodPost, "/backup", azSAS{StorageResourceURI: &curl, Token: &token}, http.StatusAccepted)
	asyncURL := resp.Header.Get("Azure-AsyncOperation")
	path := asyncURL[strings.Index(asyncURL, "/backup/"):strings.Index(asyncURL, "?")]
	var j azJob
	for i := 0; ; i++ {
		b.decode(b.do(ctx, http.MethodGet, path, nil, http.StatusOK), &j)
		if *j.Status != "InProgress" || i == 600 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if *j.Status != "Succeeded" || !strings.HasPrefix(*j.AzureStorageBlobContainerURI, curl+"/mhsm-dev-") {
		t.Fatalf("node A's backup polled on node B: %+v", j)
	}
	// Node B starts the next job: A's ended and released the pool.
	resp = b.do(ctx, http.MethodPost, "/backup", azSAS{StorageResourceURI: &curl, Token: &token}, http.StatusAccepted)
	bp, err := runtime.NewPoller(resp, b.c.Pipeline(), &runtime.NewPollerOptions[azJob]{FinalStateVia: runtime.FinalStateViaAzureAsyncOp})
	if err != nil {
		t.Fatal(err)
	}
	if j, err := bp.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 50 * time.Millisecond}); err != nil || *j.Status != "Succeeded" {
		t.Fatalf("node B's backup: %v", err)
	}
}
