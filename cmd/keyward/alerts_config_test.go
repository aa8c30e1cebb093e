package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// TestAlertsConfig: [alerts] with webhooks and a custom rule decodes, and
// nothing in it is left undecoded.
func TestAlertsConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.toml")
	os.WriteFile(path, []byte(`
[alerts]
disable_builtin = ["first-read"]
expiry_thresholds = ["14d", "36h"]
[[alerts.webhook]]
name = "soc"
url = "https://soc.example/hook"
secret = "s"
[[alerts.rule]]
name = "many-decrypts"
threshold = 100
window = "1m"
cooldown = "10m"
group_by = "caller"
[alerts.rule.filter]
operations = ["KeyDecrypt", "KeyUnwrap"]
`), 0o600)
	var fc fileConfig
	md, err := toml.DecodeFile(path, &fc)
	if err != nil || len(md.Undecoded()) > 0 {
		t.Fatalf("decode: %v, undecoded %v", err, md.Undecoded())
	}
	c, err := alertsConfig(&fc)
	if err != nil {
		t.Fatal(err)
	}
	r := c.Rules[0]
	if len(c.Webhooks) != 1 || c.DisableBuiltin[0] != "first-read" || r.Name != "many-decrypts" || r.Threshold != 100 ||
		r.Window != time.Minute || r.Cooldown != 10*time.Minute || r.GroupBy != "caller" || len(r.Filter.Operations) != 2 {
		t.Fatalf("config %+v", c)
	}
	if len(c.ExpiryThresholds) != 2 || c.ExpiryThresholds[0] != 14*24*time.Hour || c.ExpiryThresholds[1] != 36*time.Hour {
		t.Fatalf("expiry thresholds %v", c.ExpiryThresholds)
	}
	for _, bad := range []string{"0d", "-1h", "xd", "soon"} {
		fc.Alerts.ExpiryThresholds = []string{bad}
		if _, err := alertsConfig(&fc); err == nil {
			t.Errorf("expiry threshold %q accepted", bad)
		}
	}
}
