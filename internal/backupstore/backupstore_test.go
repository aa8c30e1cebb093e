package backupstore_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/keyward/keyward/internal/backupstore"
)

func TestOpenRefusals(t *testing.T) {
	root := t.TempDir()
	opts := backupstore.Options{LocalRoot: root}
	for _, uri := range []string{
		"http://example.com/c",                  // clear text off loopback
		"http://10.0.0.1:10000/acct/c",          // likewise
		"https://acct.blob.example/c?sig=x",     // SAS in the URL
		"ftp://127.0.0.1/c",                     // scheme
		"file:///etc",                           // outside the local root
		"file://" + filepath.Join(root, "../x"), // escapes the root
		"not a url",
	} {
		if _, err := backupstore.Open(context.Background(), uri, "", opts); err == nil {
			t.Errorf("Open(%q) succeeded", uri)
		}
	}
	if _, err := backupstore.Open(context.Background(), "file://"+root, "", backupstore.Options{}); err == nil {
		t.Error("a local directory was opened without a local root")
	}
	for _, uri := range []string{"http://127.0.0.1:10000/devstoreaccount1/c", "http://localhost:1/a/b", "https://acct.blob.core.windows.net/c"} {
		if _, err := backupstore.Open(context.Background(), uri, "?sv=1&sig=abc", opts); err != nil {
			t.Errorf("Open(%q): %v", uri, err)
		}
	}
}

func TestLocalDirectory(t *testing.T) {
	root := t.TempDir()
	st, err := backupstore.Open(context.Background(), "file://"+filepath.Join(root, "pool1"), "", backupstore.Options{LocalRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := st.Put(ctx, "f1/backup.kwbak", []byte("sealed")); err != nil {
		t.Fatal(err)
	}
	if got, err := st.Get(ctx, "f1/backup.kwbak"); err != nil || string(got) != "sealed" {
		t.Fatalf("Get: %q %v", got, err)
	}
	if err := st.Put(ctx, "../../escape", []byte("x")); err == nil {
		t.Error("a name escaped the directory")
	}
	if _, err := st.Get(ctx, "f2/backup.kwbak"); err == nil {
		t.Error("a missing backup was read")
	}
}
