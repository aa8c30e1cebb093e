package backupstore_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/keyward/keyward/internal/backupstore"
)

// TestRedirectNotFollowed: blob storage never redirects, so a container
// whose endpoint answers a redirect must not make the server send the
// backup (or a read) to where it points — that would bypass the rule that
// plain http goes only to loopback, and turn a backup into a request to an
// arbitrary address.
func TestRedirectNotFollowed(t *testing.T) {
	var hits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusCreated)
	}))
	defer target.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	st, err := backupstore.Open(context.Background(), redirector.URL+"/acct/c", "sv=1&sig=abc", backupstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := st.Put(ctx, "f/backup.kwbak", []byte("sealed")); err == nil {
		t.Error("Put through a redirect succeeded")
	}
	if _, err := st.Get(ctx, "f/backup.kwbak"); err == nil {
		t.Error("Get through a redirect succeeded")
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the redirect target got %d requests", n)
	}
}
