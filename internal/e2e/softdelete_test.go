package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/kwtest"
)

const ninetyDays = 90 * 24 * time.Hour

func TestSoftDeleteLifecycle(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	c := secretsClient(t, e)
	ctx := context.Background()
	const name = "Soft-Deleted"

	if _, err := c.SetSecret(ctx, name, azsecrets.SetSecretParameters{Value: to.Ptr("before-delete")}, nil); err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Minute)
	del, err := c.DeleteSecret(ctx, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	if del.RecoveryID == nil || *del.RecoveryID != e.Info.VaultURL+"deletedsecrets/"+name {
		t.Fatalf("recoveryId = %q, want %q", deref(del.RecoveryID), e.Info.VaultURL+"deletedsecrets/"+name)
	}
	if del.DeletedDate == nil || del.ScheduledPurgeDate == nil {
		t.Fatalf("deletedDate %v scheduledPurgeDate %v", del.DeletedDate, del.ScheduledPurgeDate)
	}
	if del.DeletedDate.Before(before) || del.DeletedDate.After(time.Now().Add(time.Minute)) {
		t.Fatalf("deletedDate %v is not now", del.DeletedDate)
	}
	if got := del.ScheduledPurgeDate.Sub(*del.DeletedDate); got != ninetyDays {
		t.Fatalf("scheduledPurgeDate - deletedDate = %v, want 90 days", got)
	}
	if del.Value != nil {
		t.Fatal("deleted secret carries its value")
	}
	if del.ID == nil || del.ID.Name() != name {
		t.Fatalf("deleted id %v", del.ID)
	}

	// The name is taken while deleted: create, read and delete again fail.
	_, err = c.SetSecret(ctx, name, azsecrets.SetSecretParameters{Value: to.Ptr("reuse")}, nil)
	re := wantErr(t, err, http.StatusConflict, "Conflict")
	if !strings.Contains(re.Error(), "ObjectIsDeletedButRecoverable") {
		t.Fatalf("no ObjectIsDeletedButRecoverable innererror: %v", re)
	}
	_, err = c.GetSecret(ctx, name, "", nil)
	wantErr(t, err, http.StatusNotFound, "SecretNotFound")
	_, err = c.DeleteSecret(ctx, name, nil)
	wantErr(t, err, http.StatusNotFound, "SecretNotFound")

	got, err := c.GetDeletedSecret(ctx, strings.ToLower(name), nil)
	if err != nil {
		t.Fatal(err)
	}
	if *got.RecoveryID != *del.RecoveryID || !got.DeletedDate.Equal(*del.DeletedDate) ||
		!got.ScheduledPurgeDate.Equal(*del.ScheduledPurgeDate) || got.Value != nil {
		t.Fatalf("GetDeletedSecret = %+v, want %+v", got.DeletedSecret, del.DeletedSecret)
	}

	// 30 more deleted secrets: the deleted listing pages.
	for i := range 30 {
		n := fmt.Sprintf("gone-%02d", i)
		if _, err := c.SetSecret(ctx, n, azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := c.DeleteSecret(ctx, n, nil); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	pages := 0
	for pg := c.NewListDeletedSecretPropertiesPager(nil); pg.More(); {
		p, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, it := range p.Value {
			n := it.ID.Name()
			if seen[n] {
				t.Fatalf("%s listed twice", n)
			}
			seen[n] = true
			if it.RecoveryID == nil || *it.RecoveryID != e.Info.VaultURL+"deletedsecrets/"+n || it.DeletedDate == nil || it.ScheduledPurgeDate == nil {
				t.Fatalf("deleted item %s: %+v", n, it)
			}
		}
	}
	if len(seen) != 31 || pages != 2 || !seen[name] {
		t.Fatalf("deleted listing: %d items in %d pages (want 31 in 2), %s listed: %t", len(seen), pages, name, seen[name])
	}
	// Deleted secrets are not in the live listing.
	for pg := c.NewListSecretPropertiesPager(nil); pg.More(); {
		p, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Value) != 0 {
			t.Fatalf("live listing shows %d deleted secrets", len(p.Value))
		}
	}

	// Recover: the value is back.
	rec, err := c.RecoverDeletedSecret(ctx, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rec.ID == nil || rec.ID.Name() != name {
		t.Fatalf("recovered id %v", rec.ID)
	}
	v, err := c.GetSecret(ctx, name, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *v.Value != "before-delete" {
		t.Fatalf("recovered value %q", *v.Value)
	}
	_, err = c.GetDeletedSecret(ctx, name, nil)
	wantErr(t, err, http.StatusNotFound, "SecretNotFound")
	_, err = c.RecoverDeletedSecret(ctx, name, nil)
	wantErr(t, err, http.StatusNotFound, "SecretNotFound")

	// Delete again and purge: gone for good, and the name is free.
	if _, err := c.DeleteSecret(ctx, name, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PurgeDeletedSecret(ctx, name, nil); err != nil { // the SDK accepts only 204
		t.Fatal(err)
	}
	_, err = c.GetDeletedSecret(ctx, name, nil)
	wantErr(t, err, http.StatusNotFound, "SecretNotFound")
	_, err = c.PurgeDeletedSecret(ctx, name, nil)
	wantErr(t, err, http.StatusNotFound, "SecretNotFound")
	_, err = c.RecoverDeletedSecret(ctx, name, nil)
	wantErr(t, err, http.StatusNotFound, "SecretNotFound")
	set, err := c.SetSecret(ctx, name, azsecrets.SetSecretParameters{Value: to.Ptr("after-purge")}, nil)
	if err != nil {
		t.Fatalf("set after purge: %v", err)
	}
	var versions int
	for pg := c.NewListSecretPropertiesVersionsPager(name, nil); pg.More(); {
		p, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		versions += len(p.Value)
	}
	if versions != 1 {
		t.Fatalf("after purge and set: %d versions, want 1 (purge left old versions behind)", versions)
	}
	if got, err := c.GetSecret(ctx, name, "", nil); err != nil || *got.Value != "after-purge" || got.ID.Version() != set.ID.Version() {
		t.Fatalf("get after purge: %q %v", deref(got.Value), err)
	}
}

func TestBackupRestore(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	c := secretsClient(t, e)
	ctx := context.Background()
	const name = "backed-up"

	want := map[string]string{} // version -> value
	var latest string
	for i := range 3 {
		val := fmt.Sprintf("value-%d-%d", i, time.Now().UnixNano())
		s, err := c.SetSecret(ctx, name, azsecrets.SetSecretParameters{Value: to.Ptr(val),
			ContentType: to.Ptr(fmt.Sprint("ct-", i)), Tags: map[string]*string{"i": to.Ptr(fmt.Sprint(i))}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		want[s.ID.Version()] = val
		latest = s.ID.Version()
	}
	bk, err := c.BackupSecret(ctx, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	blob := bk.Value
	if len(blob) == 0 {
		t.Fatal("empty backup blob")
	}
	for _, val := range want {
		if strings.Contains(string(blob), val) {
			t.Fatal("backup blob holds a secret value in plaintext")
		}
	}

	// Restoring over a live secret is a conflict.
	_, err = c.RestoreSecret(ctx, azsecrets.RestoreSecretParameters{SecretBackup: blob}, nil)
	wantErr(t, err, http.StatusConflict, "Conflict")

	if _, err := c.DeleteSecret(ctx, name, nil); err != nil {
		t.Fatal(err)
	}
	// ...and so is restoring over a deleted one.
	_, err = c.RestoreSecret(ctx, azsecrets.RestoreSecretParameters{SecretBackup: blob}, nil)
	wantErr(t, err, http.StatusConflict, "Conflict")
	if _, err := c.PurgeDeletedSecret(ctx, name, nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetSecret(ctx, name, latest, nil)
	wantErr(t, err, http.StatusNotFound, "SecretNotFound")

	// A tampered blob is refused, whichever byte is flipped, and leaves nothing behind.
	for _, i := range []int{0, 5, len(blob) / 2, len(blob) - 1} {
		bad := append([]byte(nil), blob...)
		bad[i] ^= 0x01
		_, err = c.RestoreSecret(ctx, azsecrets.RestoreSecretParameters{SecretBackup: bad}, nil)
		wantErr(t, err, http.StatusBadRequest, "BadParameter")
	}
	_, err = c.RestoreSecret(ctx, azsecrets.RestoreSecretParameters{SecretBackup: blob[:len(blob)-1]}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter")
	_, err = c.GetSecret(ctx, name, "", nil)
	wantErr(t, err, http.StatusNotFound, "SecretNotFound")

	// A blob from this tenant does not restore into another tenant's vault.
	other := secondTenant(t, e, "othervault")
	oc := clientFor(t, e, other.VaultURL, e.CredentialFor(other.TenantID, other.ClientID, other.ClientSecret))
	if _, err := oc.SetSecret(ctx, "other-works", azsecrets.SetSecretParameters{Value: to.Ptr("x")}, nil); err != nil {
		t.Fatalf("second tenant cannot use its own vault: %v", err)
	}
	_, err = oc.RestoreSecret(ctx, azsecrets.RestoreSecretParameters{SecretBackup: blob}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter")
	_, err = oc.GetSecret(ctx, name, "", nil)
	wantErr(t, err, http.StatusNotFound, "SecretNotFound")

	// The intact blob restores every version with its value.
	res, err := c.RestoreSecret(ctx, azsecrets.RestoreSecretParameters{SecretBackup: blob}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.ID == nil || res.ID.Name() != name {
		t.Fatalf("restore returned id %v", res.ID)
	}
	for ver, val := range want {
		got, err := c.GetSecret(ctx, name, ver, nil)
		if err != nil {
			t.Fatalf("version %s: %v", ver, err)
		}
		if *got.Value != val {
			t.Fatalf("version %s = %q, want %q", ver, *got.Value, val)
		}
	}
	got, err := c.GetSecret(ctx, name, "", nil)
	if err != nil || got.ID.Version() != latest || *got.Value != want[latest] || *got.ContentType != "ct-2" || *got.Tags["i"] != "2" {
		t.Fatalf("latest after restore: %+v %v", got.Secret, err)
	}
	n := 0
	for pg := c.NewListSecretPropertiesVersionsPager(name, nil); pg.More(); {
		p, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n += len(p.Value)
	}
	if n != len(want) {
		t.Fatalf("%d versions after restore, want %d", n, len(want))
	}

	// Restoring again while it exists is a conflict.
	_, err = c.RestoreSecret(ctx, azsecrets.RestoreSecretParameters{SecretBackup: blob}, nil)
	wantErr(t, err, http.StatusConflict, "Conflict")
}

func TestPurgeAfterRetention(t *testing.T) {
	clk := clock.NewFake(time.Now())
	e := kwtest.Start(t, kwtest.Options{Clock: clk, SchedulerInterval: 20 * time.Millisecond})
	ctx := context.Background()
	// Each client gets a fresh credential: a token cached by an earlier
	// client has expired on the server's clock once the clock has moved.
	client := func() *azsecrets.Client { return clientFor(t, e, e.Info.VaultURL, e.Credential()) }

	c := client()
	if _, err := c.SetSecret(ctx, "retained", azsecrets.SetSecretParameters{Value: to.Ptr("v1")}, nil); err != nil {
		t.Fatal(err)
	}
	del, err := c.DeleteSecret(ctx, "retained", nil)
	if err != nil {
		t.Fatal(err)
	}

	clk.Advance(89 * 24 * time.Hour)
	// Run the purge job directly so "still there" does not depend on
	// whether the scheduler happened to tick.
	if n, err := e.Server.Vaults().PurgeDue(ctx); err != nil || n != 0 {
		t.Fatalf("PurgeDue after 89 days = %d, %v; want 0", n, err)
	}
	c = client()
	got, err := c.GetDeletedSecret(ctx, "retained", nil)
	if err != nil {
		t.Fatalf("after 89 days: %v", err)
	}
	if !got.ScheduledPurgeDate.Equal(*del.ScheduledPurgeDate) {
		t.Fatalf("scheduledPurgeDate moved: %v -> %v", del.ScheduledPurgeDate, got.ScheduledPurgeDate)
	}
	_, err = c.SetSecret(ctx, "retained", azsecrets.SetSecretParameters{Value: to.Ptr("v2")}, nil)
	wantErr(t, err, http.StatusConflict, "Conflict")

	clk.Advance(24*time.Hour + time.Second)
	ranAt(t, e, clk)
	c = client()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err = c.GetDeletedSecret(ctx, "retained", nil)
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the scheduler did not purge the secret within 5s of its retention ending")
		}
		time.Sleep(10 * time.Millisecond)
	}
	wantErr(t, err, http.StatusNotFound, "SecretNotFound")
	s, err := c.SetSecret(ctx, "retained", azsecrets.SetSecretParameters{Value: to.Ptr("v2")}, nil)
	if err != nil {
		t.Fatalf("name not reusable after purge: %v", err)
	}
	if got, err := c.GetSecret(ctx, "retained", "", nil); err != nil || *got.Value != "v2" || got.ID.Version() != s.ID.Version() {
		t.Fatalf("get after reuse: %v", err)
	}
}
