package backupstore

import "testing"

func TestDialControl(t *testing.T) {
	for _, a := range []string{"169.254.169.254:80", "[fe80::1]:443", "0.0.0.0:443", "[::]:443", "224.0.0.1:443", "[ff02::1]:443"} {
		if dialControl("tcp", a, nil) == nil {
			t.Errorf("%s accepted", a)
		}
	}
	for _, a := range []string{"127.0.0.1:10000", "[::1]:10000", "20.60.0.1:443", "10.1.2.3:443"} {
		if err := dialControl("tcp", a, nil); err != nil {
			t.Errorf("%s refused: %v", a, err)
		}
	}
}
