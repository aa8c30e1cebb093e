package main

import (
	"slices"
	"testing"

	"github.com/BurntSushi/toml"
)

func TestBackupConfig(t *testing.T) {
	var fc fileConfig
	md, err := toml.Decode(`
[backup]
allowed_hosts = ["*.blob.core.windows.net", "10.20.0.0/16", "minio.corp"]
`, &fc)
	if err != nil || len(md.Undecoded()) != 0 {
		t.Fatalf("%v, undecoded %v", err, md.Undecoded())
	}
	b := backupConfig(&fc, func(string) string { return "" })
	if !slices.Equal(b.AllowedHosts, []string{"*.blob.core.windows.net", "10.20.0.0/16", "minio.corp"}) {
		t.Fatalf("from the file: %v", b.AllowedHosts)
	}
	env := map[string]string{"KEYWARD_BACKUP_ALLOWED_HOSTS": "127.0.0.1,localhost"}
	if b := backupConfig(&fc, func(k string) string { return env[k] }); !slices.Equal(b.AllowedHosts, []string{"127.0.0.1", "localhost"}) {
		t.Fatalf("from the environment: %v", b.AllowedHosts)
	}
}
