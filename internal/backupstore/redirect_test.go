package backupstore_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/keyward/keyward/internal/backupstore"
	"github.com/keyward/keyward/internal/netguard"
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
	st, err := backupstore.Open(context.Background(), redirector.URL+"/acct/c", "sv=1&sig=abc", backupstore.Options{Guard: devGuard(t)})
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

// TestRebindingRefusedAtDial: a name that resolved to a public address
// when the request was checked but to loopback when the connection is
// made (DNS rebinding; here "localhost", resolved by the system at dial
// time) is refused on the address actually dialled, so the loopback
// server sees nothing.
func TestRebindingRefusedAtDial(t *testing.T) {
	var hits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusCreated)
	}))
	defer target.Close()
	g, err := netguard.New(nil, false)
	if err != nil {
		t.Fatal(err)
	}
	g.SetLookup(fixedLookup("20.60.0.1")) // what the check sees
	uri := "http://localhost:" + target.URL[strings.LastIndex(target.URL, ":")+1:] + "/acct/c"
	st, err := backupstore.Opener(backupstore.Options{Guard: g})(context.Background(), uri, "sv=1&sig=abc")
	if err != nil {
		t.Fatalf("the check refused a name resolving to a public address: %v", err)
	}
	if err := st.Put(context.Background(), "f/backup.kwbak", []byte("sealed")); err == nil {
		t.Error("Put to a name that resolves to loopback at dial time succeeded")
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the loopback server got %d requests", n)
	}
	// The same server, allowed explicitly, takes the write: the refusal
	// above was the guard's.
	ok, _ := netguard.New([]string{"localhost"}, false)
	st, err = backupstore.Opener(backupstore.Options{Guard: ok})(context.Background(), uri, "sv=1&sig=abc")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(context.Background(), "f/backup.kwbak", []byte("sealed")); err != nil || hits.Load() == 0 {
		t.Fatalf("Put with localhost allowed: %v (%d requests)", err, hits.Load())
	}
}
