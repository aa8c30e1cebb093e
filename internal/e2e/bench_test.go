package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyward/keyward/internal/kwtest"
)

// Each benchmark runs the raw primitive alone ("raw") and the same
// operation through Keyward's full HTTP stack ("keyward": TLS, token
// validation, authorization, storage, audit), in parallel on every core.
// The ratio of the two ns/op is what docs/PERFORMANCE.md reports. The
// client runs in the same process, so "keyward" also pays for the client.

type benchEnv struct {
	e     *kwtest.Env
	token string
	// hc sends the measured requests: e.HTTP (HTTP/2, one connection, as
	// the Azure SDK's transport negotiates it), or an HTTP/1.1 client.
	hc *http.Client
	// proto is the protocol every measured response must have come over.
	proto string
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	e := kwtest.Start(b, kwtest.Options{})
	tok, err := e.Credential().GetToken(context.Background(), tokenOpts(e))
	if err != nil {
		b.Fatal(err)
	}
	return &benchEnv{e: e, token: tok.Token, hc: e.HTTP, proto: "HTTP/2.0"}
}

// http1 sends the measured requests over HTTP/1.1 keep-alive connections
// (one per concurrent request) instead of one HTTP/2 connection.
func (be *benchEnv) http1() *benchEnv {
	t := be.e.HTTP.Transport.(*http.Transport).Clone()
	t.ForceAttemptHTTP2 = false
	t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{} // non-nil and empty: no HTTP/2
	t.TLSClientConfig.NextProtos = []string{"http/1.1"}
	be.hc, be.proto = &http.Client{Transport: t}, "HTTP/1.1"
	return be
}

func (be *benchEnv) do(b *testing.B, method, path string, body []byte) []byte {
	req, _ := http.NewRequest(method, be.e.Info.VaultURL+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+be.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := be.hc.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, out)
	}
	if resp.Proto != be.proto {
		b.Fatalf("%s %s: answered over %s, want %s", method, path, resp.Proto, be.proto)
	}
	return out
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (be *benchEnv) createKey(b *testing.B, name string, p azkeys.CreateKeyParameters) string {
	c, err := azkeys.NewClient(be.e.Info.VaultURL, be.e.Credential(), &azkeys.ClientOptions{ClientOptions: be.e.ClientOptions()})
	if err != nil {
		b.Fatal(err)
	}
	k, err := c.CreateKey(context.Background(), name, p, nil)
	if err != nil {
		b.Fatal(err)
	}
	return k.Key.KID.Version()
}

func (be *benchEnv) parallel(b *testing.B, method, path string, body []byte) {
	be.do(b, method, path, body) // warm: token cache, key cache, connections
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			be.do(b, method, path, body)
		}
	})
}

func BenchmarkRS256Sign(b *testing.B) {
	digest := sha256.Sum256([]byte("benchmark"))
	b.Run("raw", func(b *testing.B) {
		k, _ := rsa.GenerateKey(rand.Reader, 2048)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := rsa.SignPKCS1v15(nil, k, crypto.SHA256, digest[:]); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("keyward", func(b *testing.B) {
		be := newBenchEnv(b)
		v := be.createKey(b, "rsa", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048)})
		body, _ := json.Marshal(map[string]string{"alg": "RS256", "value": b64(digest[:])})
		be.parallel(b, http.MethodPost, "keys/rsa/"+v+"/sign?api-version=7.6", body)
	})
}

func BenchmarkES256Sign(b *testing.B) {
	digest := sha256.Sum256([]byte("benchmark"))
	b.Run("raw", func(b *testing.B) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := ecdsa.SignASN1(rand.Reader, k, digest[:]); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	// keyward-http2: one HTTP/2 connection (what the Azure SDK for Go
	// negotiates); keyward-http1: HTTP/1.1 keep-alive connections.
	for _, proto := range []string{"http2", "http1"} {
		b.Run("keyward-"+proto, func(b *testing.B) {
			be := newBenchEnv(b)
			v := be.createKey(b, "ec", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), Curve: to.Ptr(azkeys.CurveNameP256)})
			if proto == "http1" {
				be.http1()
			}
			body, _ := json.Marshal(map[string]string{"alg": "ES256", "value": b64(digest[:])})
			be.parallel(b, http.MethodPost, "keys/ec/"+v+"/sign?api-version=7.6", body)
		})
	}
}

func BenchmarkOAEP256Unwrap(b *testing.B) {
	dek := make([]byte, 32)
	rand.Read(dek)
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	b.Run("raw", func(b *testing.B) {
		ct, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, &k.PublicKey, dek, nil)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := rsa.DecryptOAEP(sha256.New(), nil, k, ct, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("keyward", func(b *testing.B) {
		be := newBenchEnv(b)
		v := be.createKey(b, "rsa", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048)})
		wrap, _ := json.Marshal(map[string]string{"alg": "RSA-OAEP-256", "value": b64(dek)})
		var res struct{ Value string }
		json.Unmarshal(be.do(b, http.MethodPost, "keys/rsa/"+v+"/wrapkey?api-version=7.6", wrap), &res)
		body, _ := json.Marshal(map[string]string{"alg": "RSA-OAEP-256", "value": res.Value})
		be.parallel(b, http.MethodPost, "keys/rsa/"+v+"/unwrapkey?api-version=7.6", body)
	})
}

func BenchmarkOAEP256Wrap(b *testing.B) {
	dek := make([]byte, 32)
	rand.Read(dek)
	b.Run("raw", func(b *testing.B) {
		k, _ := rsa.GenerateKey(rand.Reader, 2048)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &k.PublicKey, dek, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("keyward", func(b *testing.B) {
		be := newBenchEnv(b)
		v := be.createKey(b, "rsa", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048)})
		body, _ := json.Marshal(map[string]string{"alg": "RSA-OAEP-256", "value": b64(dek)})
		be.parallel(b, http.MethodPost, "keys/rsa/"+v+"/wrapkey?api-version=7.6", body)
	})
}

// BenchmarkSecretGet compares a secret read with the barrier's primitive:
// one AES-256-GCM open of a blob of the same size.
func BenchmarkSecretGet(b *testing.B) {
	b.Run("raw", func(b *testing.B) {
		key := make([]byte, 32)
		rand.Read(key)
		block, _ := aes.NewCipher(key)
		aead, _ := cipher.NewGCMWithRandomNonce(block)
		blob := aead.Seal(nil, nil, make([]byte, 200), []byte("v/0123456789abcdef/s/v/bench/0123456789abcdef0123456789abcdef"))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := aead.Open(nil, nil, blob, []byte("v/0123456789abcdef/s/v/bench/0123456789abcdef0123456789abcdef")); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	for _, proto := range []string{"http2", "http1"} {
		b.Run("keyward-"+proto, func(b *testing.B) {
			be := newBenchEnv(b)
			c, _ := azsecrets.NewClient(be.e.Info.VaultURL, be.e.Credential(), &azsecrets.ClientOptions{ClientOptions: be.e.ClientOptions()})
			if _, err := c.SetSecret(context.Background(), "bench", azsecrets.SetSecretParameters{Value: to.Ptr("a small secret value")}, nil); err != nil {
				b.Fatal(err)
			}
			if proto == "http1" {
				be.http1()
			}
			be.parallel(b, http.MethodGet, "secrets/bench/?api-version=7.6", nil)
		})
	}
	for _, proto := range []string{"http2", "http1"} {
		b.Run("floor-"+proto, func(b *testing.B) { benchSecretGetFloor(b, proto) })
	}
}
