package e2e

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/keyward/keyward/internal/bench"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/server"
)

// benchSecretGetFloor is BenchmarkSecretGet's floor: the same requests
// from the same client against a bare net/http TLS server with Keyward's
// listener settings (server.ListenerTLSConfig, server.NewHTTPServer) that
// answers with a secret-get response captured from Keyward, after one
// chained, audit-sized write(2) (bench.FloorHandler, what `keyward bench
// --floor` runs as its own process). keyward-* ÷ floor-* ns/op is the
// full stack against the bare server, the client included in both.
func benchSecretGetFloor(b *testing.B, proto string) {
	be := newBenchEnv(b)
	fr, err := bench.CaptureFloorResponse(context.Background(),
		bench.Config{DevJSON: filepath.Join(be.e.DataDir, "dev.json"), Op: bench.OpSecretGet}, filepath.Join(be.e.DataDir, "audit.log"))
	if err != nil {
		b.Fatal(err)
	}
	cert, err := bench.DevCertificate(filepath.Join(be.e.DataDir, "tls"))
	if err != nil {
		b.Fatal(err)
	}
	tlsCfg, err := server.ListenerTLSConfig(server.TLSConfig{})
	if err != nil {
		b.Fatal(err)
	}
	tlsCfg.Certificates = []tls.Certificate{cert}
	af, err := os.OpenFile(filepath.Join(b.TempDir(), "floor-audit.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { af.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := server.NewHTTPServer(bench.NewFloorHandler(fr, af), tlsCfg, nil)
	go hs.ServeTLS(ln, "", "")
	b.Cleanup(func() { hs.Close() })
	// The measured client, dialled to the floor: http1 clones e.HTTP.
	be.e.HTTP = kwtest.HTTPClient(b, be.e.Server.CAFile(), ln.Addr().String())
	be.hc = be.e.HTTP
	if proto == "http1" {
		be.http1()
	}
	be.parallel(b, http.MethodGet, "secrets/bench/?api-version=7.6", nil)
}
