package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/BurntSushi/toml"
)

func TestCertificateConfig(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "smtp.password")
	os.WriteFile(pw, []byte("s3cret\n"), 0o600)
	var fc fileConfig
	if _, err := toml.Decode(`
[smtp]
addr = "smtp.example.com:587"
from = "keyward@example.com"
username = "keyward"
password_file = "`+pw+`"

[acme]
http01_listen = ":80"
hook_url = "https://hook.example/acme"
allowed_directories = ["https://acme.example/dir"]
`, &fc); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"KEYWARD_ACME_HOOK_SECRET": "hook-secret", "KEYWARD_SMTP_TLS": "tls"}
	smtp, acme, err := certificateConfig(&fc, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if smtp == nil || smtp.Addr != "smtp.example.com:587" || smtp.Password != "s3cret" || smtp.TLS != "tls" || smtp.Username != "keyward" {
		t.Fatalf("smtp %+v", smtp)
	}
	if acme.HTTP01Listen != ":80" || acme.HookURL != "https://hook.example/acme" || string(acme.HookSecret) != "hook-secret" ||
		len(acme.AllowedDirectories) != 1 {
		t.Fatalf("acme %+v", acme)
	}
	var empty fileConfig
	if smtp, _, err := certificateConfig(&empty, func(string) string { return "" }); err != nil || smtp != nil {
		t.Fatalf("no [smtp]: %v %v", smtp, err)
	}
	fc.SMTP.PasswordFile = filepath.Join(dir, "missing")
	if _, _, err := certificateConfig(&fc, func(string) string { return "" }); err == nil {
		t.Fatal("a missing password file must be an error")
	}
}
