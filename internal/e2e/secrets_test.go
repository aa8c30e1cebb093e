package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyward/keyward/internal/kwtest"
)

func secretsClient(t *testing.T, e *kwtest.Env) *azsecrets.Client {
	t.Helper()
	c, err := azsecrets.NewClient(e.Info.VaultURL, e.Credential(), &azsecrets.ClientOptions{ClientOptions: e.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wantErr checks that err is an azcore.ResponseError with status and code.
func wantErr(t *testing.T, err error, status int, code string) *azcore.ResponseError {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("want HTTP %d %s, got %v", status, code, err)
	}
	if re.StatusCode != status || re.ErrorCode != code {
		t.Fatalf("want HTTP %d %s, got %d %s", status, code, re.StatusCode, re.ErrorCode)
	}
	return re
}

func TestSecretsLifecycle(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	c := secretsClient(t, e)
	ctx := context.Background()

	// Set, then get latest, by version, and a second version.
	set, err := c.SetSecret(ctx, "db-password", azsecrets.SetSecretParameters{
		Value: to.Ptr("s3cr3t-1"), ContentType: to.Ptr("text/plain"),
		Tags: map[string]*string{"env": to.Ptr("test")},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := *set.ID
	if id.Name() != "db-password" || len(id.Version()) != 32 {
		t.Fatalf("bad id %s", id)
	}
	if !strings.HasPrefix(string(id), e.Info.VaultURL+"secrets/db-password/") {
		t.Fatalf("id %s not under %s", id, e.Info.VaultURL)
	}
	if *set.Value != "s3cr3t-1" || *set.ContentType != "text/plain" || *set.Tags["env"] != "test" {
		t.Fatalf("set returned %+v", set.Secret)
	}
	if set.Attributes.Created == nil || set.Attributes.Updated == nil || !*set.Attributes.Enabled {
		t.Fatalf("attributes %+v", set.Attributes)
	}
	if *set.Attributes.RecoveryLevel != "Recoverable+Purgeable" || *set.Attributes.RecoverableDays != 90 {
		t.Fatalf("recovery %s %d", *set.Attributes.RecoveryLevel, *set.Attributes.RecoverableDays)
	}
	v1 := id.Version()
	set2, err := c.SetSecret(ctx, "db-password", azsecrets.SetSecretParameters{Value: to.Ptr("s3cr3t-2")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	v2 := set2.ID.Version()
	if v1 == v2 {
		t.Fatal("same version twice")
	}
	latest, err := c.GetSecret(ctx, "db-password", "", nil) // GET /secrets/db-password/
	if err != nil {
		t.Fatal(err)
	}
	if *latest.Value != "s3cr3t-2" || latest.ID.Version() != v2 {
		t.Fatalf("latest = %s %s", *latest.Value, latest.ID.Version())
	}
	old, err := c.GetSecret(ctx, "DB-PASSWORD", v1, nil) // names are case-insensitive
	if err != nil {
		t.Fatal(err)
	}
	if *old.Value != "s3cr3t-1" {
		t.Fatalf("v1 = %s", *old.Value)
	}

	// Update properties; disabled secrets are refused.
	upd, err := c.UpdateSecretProperties(ctx, "db-password", v1, azsecrets.UpdateSecretPropertiesParameters{
		ContentType:      to.Ptr("application/x-test"),
		SecretAttributes: &azsecrets.SecretAttributes{Enabled: to.Ptr(false)},
		Tags:             map[string]*string{"owner": to.Ptr("ops")},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *upd.Attributes.Enabled || *upd.ContentType != "application/x-test" || *upd.Tags["owner"] != "ops" || upd.Value != nil {
		t.Fatalf("update returned %+v", upd.Secret)
	}
	_, err = c.GetSecret(ctx, "db-password", v1, nil)
	re := wantErr(t, err, http.StatusForbidden, "Forbidden")
	if !strings.Contains(re.Error(), "SecretDisabled") {
		t.Fatalf("no SecretDisabled innererror: %v", re)
	}
	if _, err := c.GetSecret(ctx, "db-password", v2, nil); err != nil {
		t.Fatalf("v2 still enabled: %v", err)
	}

	// Versions.
	var versions []string
	for pg := c.NewListSecretPropertiesVersionsPager("db-password", nil); pg.More(); {
		p, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range p.Value {
			versions = append(versions, it.ID.Version())
		}
	}
	if len(versions) != 2 {
		t.Fatalf("versions %v", versions)
	}

	// Not found, and bad names.
	_, err = c.GetSecret(ctx, "nope", "", nil)
	wantErr(t, err, http.StatusNotFound, "SecretNotFound")
	_, err = c.GetSecret(ctx, "db-password", strings.Repeat("a", 32), nil)
	wantErr(t, err, http.StatusNotFound, "SecretNotFound")
	_, err = c.SetSecret(ctx, "bad_name", azsecrets.SetSecretParameters{Value: to.Ptr("x")}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter")
	_, err = c.SetSecret(ctx, "big", azsecrets.SetSecretParameters{Value: to.Ptr(strings.Repeat("x", 25*1024+1))}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter")
	tags := map[string]*string{}
	for i := range 16 {
		tags[fmt.Sprint("t", i)] = to.Ptr("v")
	}
	_, err = c.SetSecret(ctx, "tagged", azsecrets.SetSecretParameters{Value: to.Ptr("x"), Tags: tags}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter")
	if _, err := c.GetSecret(ctx, "tagged", "", nil); err == nil {
		t.Fatal("a refused set stored something")
	}

	// nbf and exp are enforced on get.
	future := time.Now().Add(time.Hour)
	past := time.Now().Add(-time.Hour)
	if _, err := c.SetSecret(ctx, "later", azsecrets.SetSecretParameters{Value: to.Ptr("x"),
		SecretAttributes: &azsecrets.SecretAttributes{NotBefore: &future}}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetSecret(ctx, "later", "", nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden")
	if _, err := c.SetSecret(ctx, "gone", azsecrets.SetSecretParameters{Value: to.Ptr("x"),
		SecretAttributes: &azsecrets.SecretAttributes{Expires: &past}}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetSecret(ctx, "gone", "", nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden")
}

func TestSecretsPaging(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	c := secretsClient(t, e)
	ctx := context.Background()
	const n = 37
	want := map[string]bool{}
	for i := range n {
		name := fmt.Sprintf("page-%02d", i)
		want[name] = true
		if _, err := c.SetSecret(ctx, name, azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
			t.Fatal(err)
		}
	}
	pages := 0
	seen := map[string]bool{}
	for pg := c.NewListSecretPropertiesPager(nil); pg.More(); {
		p, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, it := range p.Value {
			name := it.ID.Name()
			if seen[name] {
				t.Fatalf("%s listed twice", name)
			}
			seen[name] = true
			if it.ID.Version() != "" {
				t.Fatalf("list item id has a version: %s", *it.ID)
			}
		}
		if p.NextLink != nil && *p.NextLink != "" {
			if !strings.HasPrefix(*p.NextLink, e.Info.VaultURL+"secrets?") || !strings.Contains(*p.NextLink, "api-version=") {
				t.Fatalf("nextLink %s", *p.NextLink)
			}
		}
	}
	if len(seen) != n || pages != 2 {
		t.Fatalf("listed %d secrets in %d pages, want %d in 2", len(seen), pages, n)
	}
	for name := range want {
		if !seen[name] {
			t.Fatalf("%s missing", name)
		}
	}

	// maxresults is 1..25 and carried in nextLink.
	tok, err := e.Credential().GetToken(ctx, tokenOpts(e))
	if err != nil {
		t.Fatal(err)
	}
	get := func(url string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		resp, err := e.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var sb strings.Builder
		buf := make([]byte, 4096)
		for {
			k, err := resp.Body.Read(buf)
			sb.Write(buf[:k])
			if err != nil {
				break
			}
		}
		return resp, sb.String()
	}
	resp, body := get(e.Info.VaultURL + "secrets?api-version=7.4&maxresults=26")
	if resp.StatusCode != 400 || !strings.Contains(body, "BadParameter") {
		t.Fatalf("maxresults=26: %d %s", resp.StatusCode, body)
	}
	resp, body = get(e.Info.VaultURL + "secrets?api-version=7.4&maxresults=10")
	if resp.StatusCode != 200 || !strings.Contains(body, "maxresults=10") || strings.Count(body, `"id"`) != 10 {
		t.Fatalf("maxresults=10: %d %s", resp.StatusCode, body)
	}
	resp, body = get(e.Info.VaultURL + "secrets?api-version=1999-01-01")
	if resp.StatusCode != 400 || !strings.Contains(body, "The specified version (1999-01-01) is not recognized") {
		t.Fatalf("bad api-version: %d %s", resp.StatusCode, body)
	}
	resp, body = get(e.Info.VaultURL + "SECRETS/Page-01/?api-version=7.4")
	if resp.StatusCode != 200 || !strings.Contains(body, `"value":"v"`) {
		t.Fatalf("case-insensitive path: %d %s", resp.StatusCode, body)
	}
	if resp.Header.Get("x-ms-request-id") == "" {
		t.Fatal("no x-ms-request-id")
	}
}
