package main

import (
	"slices"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

func TestBackupConfig(t *testing.T) {
	var fc fileConfig
	md, err := toml.Decode(`
[backup]
allowed_hosts = ["*.blob.core.windows.net", "10.20.0.0/16", "minio.corp"]

[events]
allowed_hosts = ["hooks.example.com"]
`, &fc)
	if err != nil || len(md.Undecoded()) != 0 {
		t.Fatalf("%v, undecoded %v", err, md.Undecoded())
	}
	b, ev := backupConfig(&fc, func(string) string { return "" })
	if !slices.Equal(b.AllowedHosts, []string{"*.blob.core.windows.net", "10.20.0.0/16", "minio.corp"}) || !slices.Equal(ev.AllowedHosts, []string{"hooks.example.com"}) {
		t.Fatalf("from the file: %v %v", b.AllowedHosts, ev.AllowedHosts)
	}
	env := map[string]string{"KEYWARD_BACKUP_ALLOWED_HOSTS": "127.0.0.1,localhost", "KEYWARD_EVENTS_ALLOWED_HOSTS": "10.1.0.0/16"}
	b, ev = backupConfig(&fc, func(k string) string { return env[k] })
	if !slices.Equal(b.AllowedHosts, []string{"127.0.0.1", "localhost"}) || !slices.Equal(ev.AllowedHosts, []string{"10.1.0.0/16"}) {
		t.Fatalf("from the environment: %v %v", b.AllowedHosts, ev.AllowedHosts)
	}
}

func TestFederationConfig(t *testing.T) {
	var fc fileConfig
	md, err := toml.Decode(`
[federation]
allowed_hosts = ["oidc.cluster-1.internal", "10.96.0.1"]
`, &fc)
	if err != nil || len(md.Undecoded()) != 0 {
		t.Fatalf("%v, undecoded %v", err, md.Undecoded())
	}
	if c := federationConfig(&fc, func(string) string { return "" }); !slices.Equal(c.AllowedHosts, []string{"oidc.cluster-1.internal", "10.96.0.1"}) {
		t.Fatalf("from the file: %v", c.AllowedHosts)
	}
	env := map[string]string{"KEYWARD_FEDERATION_ALLOWED_HOSTS": "token.actions.githubusercontent.com,10.0.0.0/8"}
	if c := federationConfig(&fc, func(k string) string { return env[k] }); !slices.Equal(c.AllowedHosts, []string{"token.actions.githubusercontent.com", "10.0.0.0/8"}) {
		t.Fatalf("from the environment: %v", c.AllowedHosts)
	}
}

func TestQuorumRetentionConfig(t *testing.T) {
	var fc fileConfig
	md, err := toml.Decode(`
[quorum]
retention = "720h"
`, &fc)
	if err != nil || len(md.Undecoded()) != 0 {
		t.Fatalf("%v, undecoded %v", err, md.Undecoded())
	}
	none := func(string) string { return "" }
	if d, err := quorumRetention(&fc, none); err != nil || d != 720*time.Hour {
		t.Fatalf("from the file: %v, %v", d, err)
	}
	env := map[string]string{"KEYWARD_QUORUM_RETENTION": "8760h"}
	if d, err := quorumRetention(&fc, func(k string) string { return env[k] }); err != nil || d != 8760*time.Hour {
		t.Fatalf("from the environment: %v, %v", d, err)
	}
	if d, err := quorumRetention(&fileConfig{}, none); err != nil || d != 0 {
		t.Fatalf("unset: %v, %v (want 0, the default)", d, err)
	}
	for _, bad := range []string{"90d", "1h", "-720h", "0s", "soon"} {
		env["KEYWARD_QUORUM_RETENTION"] = bad
		if d, err := quorumRetention(&fc, func(k string) string { return env[k] }); err == nil {
			t.Errorf("retention %q accepted as %v", bad, d)
		}
	}
}
