package main

import (
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/keyward/keyward/internal/identity"
)

func TestTokenLimitsConfig(t *testing.T) {
	var fc fileConfig
	if _, err := toml.Decode(`[token_endpoint]
source_rate = 5
client_burst = 7
lockout_failures = 4
lockout_window = "2m"`, &fc); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"KEYWARD_TOKEN_CLIENT_RATE": "0", "KEYWARD_TOKEN_LOCKOUT_DURATION": "1h"}
	l, err := tokenLimits(&fc, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	d := identity.DefaultTokenLimits
	if l.Source.Rate != 5 || l.Source.Burst != d.Source.Burst || l.Client.Rate != 0 || l.Client.Burst != 7 ||
		l.LockoutFailures != 4 || l.LockoutWindow != 2*time.Minute || l.LockoutDuration != time.Hour {
		t.Fatalf("%+v", l)
	}
	if l, err := tokenLimits(&fileConfig{}, func(string) string { return "" }); err != nil || l != d {
		t.Fatalf("defaults: %+v %v", l, err)
	}
	env = map[string]string{"KEYWARD_TOKEN_LOCKOUT_WINDOW": "soon"}
	if _, err := tokenLimits(&fileConfig{}, func(k string) string { return env[k] }); err == nil {
		t.Fatal("bad duration accepted")
	}
}
