package e2e

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/server"
)

// TestPostQuantumTLS: every host the dev server serves (data plane,
// management, token service, managed HSM, keymgmt, console), on both the
// public and the private listener, completes a handshake with a Go client
// that offers only X25519MLKEM768, and the connection state confirms the
// hybrid; a default Go client gets it too (preferred over X25519).
func TestPostQuantumTLS(t *testing.T) {
	dir := t.TempDir()
	s, err := server.Start(context.Background(), server.Config{
		Dev: true, Listen: "127.0.0.1:0", PrivateListen: "127.0.0.1:0", DataDir: dir, DNSSuffix: "localhost",
		Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e := &kwtest.Env{T: t, Server: s, Info: s.Dev(), DataDir: dir}
	pool := caPool(t, e)
	hosts := map[string]string{}
	for what, u := range map[string]string{
		"data plane": e.Info.VaultURL, "management": e.Info.ManagementURL, "identity": e.Info.AuthorityHost,
		"managed HSM": e.Info.ManagedHSMURL, "keymgmt": e.Info.KeymgmtAddress, "console": e.Info.UIURL,
	} {
		pu, err := url.Parse(u)
		if err != nil || pu.Hostname() == "" {
			t.Fatalf("%s URL %q in dev.json: %v", what, u, err)
		}
		hosts[what] = pu.Hostname()
	}
	dial := func(addr, host string, curves []tls.CurveID) (tls.ConnectionState, error) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{
			RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS13, CurvePreferences: curves})
		if err != nil {
			return tls.ConnectionState{}, err
		}
		defer c.Close()
		return c.ConnectionState(), nil
	}
	for _, l := range []struct{ name, addr string }{{"public", s.Addr()}, {"private", s.PrivateAddr()}} {
		for what, host := range hosts {
			st, err := dial(l.addr, host, []tls.CurveID{tls.X25519MLKEM768})
			if err != nil {
				t.Errorf("%s listener, %s (%s): X25519MLKEM768-only handshake: %v", l.name, what, host, err)
				continue
			}
			if st.CurveID != tls.X25519MLKEM768 || st.Version != tls.VersionTLS13 {
				t.Errorf("%s listener, %s: negotiated %v, version %x", l.name, what, st.CurveID, st.Version)
			}
		}
	}
	// A default Go client (it offers X25519MLKEM768 and X25519) gets the
	// hybrid; a client offering only X25519 gets X25519, so CurveID tells.
	if st, err := dial(s.Addr(), hosts["data plane"], nil); err != nil || st.CurveID != tls.X25519MLKEM768 {
		t.Errorf("default client: %v, %v", st.CurveID, err)
	}
	if st, err := dial(s.Addr(), hosts["data plane"], []tls.CurveID{tls.X25519}); err != nil || st.CurveID != tls.X25519 {
		t.Errorf("X25519-only client: %v, %v", st.CurveID, err)
	}
	if !strings.Contains(e.Info.ManagedHSMURL, "managedhsm") {
		t.Errorf("managed HSM URL %q", e.Info.ManagedHSMURL)
	}
}
