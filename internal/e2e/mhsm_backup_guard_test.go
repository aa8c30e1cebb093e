package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/server"
)

// TestManagedHSMBackupDestinations: a backup or restore container the
// server may not reach — not in [backup] allowed_hosts, or at a loopback,
// private or link-local address — is refused with 400 InvalidStorage
// before anything starts (no job, no blob written, the pool free for the
// next job), through azadmin's pipeline; a container allowed explicitly
// (azurite on 127.0.0.1) takes the backup.
func TestManagedHSMBackupDestinations(t *testing.T) {
	curl, token := azurite(t) // http://127.0.0.1:PORT/devstoreaccount1/backups
	ctx := context.Background()
	refused := func(a *adminClient, method, path string, body any) {
		t.Helper()
		resp, err := a.send(ctx, method, path, body)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		// azcore reads error.code; the endpoint's own code is the inner one.
		raw, _ := runtime.Payload(resp)
		var b struct {
			Error struct {
				Message    string `json:"message"`
				InnerError struct {
					Code string `json:"code"`
				} `json:"innererror"`
			} `json:"error"`
		}
		var re *azcore.ResponseError
		if err := runtime.NewResponseError(resp); resp.StatusCode != http.StatusBadRequest || !errors.As(err, &re) || re.ErrorCode != "BadParameter" ||
			json.Unmarshal(raw, &b) != nil || b.Error.InnerError.Code != "InvalidStorage" || !strings.Contains(b.Error.Message, "allowed_hosts") {
			t.Errorf("%s %s %v: %d %s", method, path, body, resp.StatusCode, raw)
		}
		if strings.Contains(string(raw), "sig=") {
			t.Errorf("the refusal carries the SAS token: %s", raw)
		}
		if resp.Header.Get("Azure-AsyncOperation") != "" {
			t.Errorf("%s %s: a refused request started a job", method, path)
		}
	}
	every := func(a *adminClient, uri string) {
		t.Helper()
		sas := map[string]any{"storageResourceUri": uri, "token": token}
		refused(a, http.MethodPost, "/backup", sas)
		refused(a, http.MethodPost, "/prebackup", sas)
		refused(a, http.MethodPut, "/restore", map[string]any{"sasTokenParameters": sas, "folderToRestore": "mhsm-dev-1"})
		refused(a, http.MethodPut, "/prerestore", map[string]any{"sasTokenParameters": sas, "folderToRestore": "mhsm-dev-1"})
		refused(a, http.MethodPut, "/keys/k1/restore", map[string]any{"sasTokenParameters": sas, "folder": "mhsm-dev-1"})
	}
	blobs := func() int {
		t.Helper()
		c, err := container.NewClientWithNoCredential(curl+"?"+token, nil)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for pg := c.NewListBlobsFlatPager(nil); pg.More(); {
			page, err := pg.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			n += len(page.Segment.BlobItems)
		}
		return n
	}
	backup := func(a *adminClient, uri string) azJob {
		t.Helper()
		resp := a.do(ctx, http.MethodPost, "/backup", azSAS{StorageResourceURI: &uri, Token: &token}, http.StatusAccepted)
		p, err := runtime.NewPoller(resp, a.c.Pipeline(), &runtime.NewPollerOptions[azJob]{FinalStateVia: runtime.FinalStateViaAzureAsyncOp})
		if err != nil {
			t.Fatal(err)
		}
		j, err := p.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 50 * time.Millisecond})
		if err != nil {
			t.Fatalf("backup to %s: %v", uri, err)
		}
		return j
	}

	// allowed_hosts names 127.0.0.1 only: the same azurite by another
	// name, and anything else, is refused; by its address it works.
	e := kwtest.Start(t, kwtest.Options{Backup: server.BackupConfig{AllowedHosts: []string{"127.0.0.1", "*.blob.core.windows.net"}}})
	a := newAdminClient(t, e, e.Credential(), "dev")
	for _, uri := range []string{
		strings.Replace(curl, "127.0.0.1", "localhost", 1),
		"https://10.0.0.1/devstoreaccount1/backups",
		"https://169.254.169.254/metadata/c",
		"https://[::1]/a/c",
		"https://acct.blob.core.windows.net.example/c",
	} {
		every(a, uri)
	}
	if n := blobs(); n != 0 {
		t.Fatalf("refused requests wrote %d blobs", n)
	}
	if j := backup(a, curl); *j.Status != "Succeeded" || !strings.HasPrefix(*j.AzureStorageBlobContainerURI, curl+"/") {
		t.Fatalf("backup to the allowed container: %+v", j)
	}
	if n := blobs(); n != 1 {
		t.Fatalf("after one backup the container holds %d blobs", n)
	}

	// No allowed_hosts, dev server: loopback (a local azurite) is allowed,
	// private and link-local addresses are not.
	d := kwtest.Start(t, kwtest.Options{})
	da := newAdminClient(t, d, d.Credential(), "dev")
	for _, uri := range []string{"https://10.1.2.3/a/c", "https://192.168.1.1/a/c", "https://169.254.169.254/a/c", "https://[fd00::1]/a/c", "https://[::ffff:10.0.0.1]/a/c"} {
		every(da, uri)
	}
	if j := backup(da, curl); *j.Status != "Succeeded" {
		t.Fatalf("dev backup to azurite on loopback: %+v", j)
	}
}
