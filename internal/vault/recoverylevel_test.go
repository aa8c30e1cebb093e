package vault

import "testing"

// TestRecoveryLevel checks Azure's four deletion recovery levels and that
// naming one allocates nothing (it runs for every object a request returns).
func TestRecoveryLevel(t *testing.T) {
	for _, c := range []struct {
		days      int
		protected bool
		want      string
	}{
		{90, false, "Recoverable+Purgeable"},
		{90, true, "Recoverable"},
		{7, false, "CustomizedRecoverable+Purgeable"},
		{89, true, "CustomizedRecoverable"},
	} {
		v := &Vault{RetentionDays: c.days, PurgeProtected: c.protected}
		if got := v.RecoveryLevel(); got != c.want {
			t.Errorf("RetentionDays %d, PurgeProtected %v: %q, want %q", c.days, c.protected, got, c.want)
		}
		if n := testing.AllocsPerRun(100, func() { _ = v.RecoveryLevel() }); n != 0 {
			t.Errorf("RetentionDays %d, PurgeProtected %v: %v allocations", c.days, c.protected, n)
		}
	}
}
