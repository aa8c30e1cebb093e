package api

import "testing"

func TestShapeForOlderVersions(t *testing.T) {
	in := `{"id":"x","attributes":{"enabled":true,"recoveryLevel":"CustomizedRecoverable+Purgeable","recoverableDays":7,"exportable":true,"hsmPlatform":"2"},` +
		`"release_policy":{"data":"e30"},"policy":{"key_props":{"exportable":true},"attributes":{"enabled":true}},"preserveCertOrder":false,"value":[{"attributes":{"recoveryLevel":"CustomizedRecoverable"}}]}`
	for _, c := range []struct{ version, want string }{
		{"2026-04-01", in},
		{"7.6-preview.1", in},
		{"7.5", `{"attributes":{"enabled":true,"exportable":true,"hsmPlatform":"2","recoverableDays":7,"recoveryLevel":"CustomizedRecoverable+Purgeable"},"id":"x","policy":{"attributes":{"enabled":true},"key_props":{"exportable":true}},"release_policy":{"data":"e30"},"value":[{"attributes":{"recoveryLevel":"CustomizedRecoverable"}}]}`},
		{"7.2", `{"attributes":{"enabled":true,"recoverableDays":7,"recoveryLevel":"CustomizedRecoverable+Purgeable"},"id":"x","policy":{"attributes":{"enabled":true},"key_props":{"exportable":true}},"value":[{"attributes":{"recoveryLevel":"CustomizedRecoverable"}}]}`},
		{"7.0", `{"attributes":{"enabled":true,"recoveryLevel":"Recoverable+Purgeable"},"id":"x","policy":{"attributes":{"enabled":true},"key_props":{"exportable":true}},"value":[{"attributes":{"recoveryLevel":"Recoverable"}}]}`},
		{"2015-06-01", `{"attributes":{"enabled":true},"id":"x","policy":{"attributes":{"enabled":true},"key_props":{"exportable":true}},"value":[{"attributes":{}}]}`},
	} {
		if got := string(shapeFor(c.version).shapeJSON([]byte(in))); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.version, got, c.want)
		}
	}
}
