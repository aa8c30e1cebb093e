package bench

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
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Operation names, as `keyward bench --op` takes them.
const (
	OpSecretGet  = "secret-get"
	OpSecretSet  = "secret-set"
	OpSecretList = "secret-list"
	OpRS256      = "rsa-sign-rs256"
	OpPS256      = "rsa-sign-ps256"
	OpES256      = "ec-sign-es256"
	OpWrap       = "rsa-wrap-oaep256"
	OpUnwrap     = "rsa-unwrap-oaep256"
	OpAESGCM     = "aes-gcm-encrypt"
	OpHSMRS256   = "hsm-sign-rs256"
	OpHSMES256   = "hsm-sign-es256"
)

// Ops lists every operation with a one-line description.
var Ops = []struct{ Name, Help string }{
	{OpSecretGet, "GET a secret (latest version); --names N reads random ones of N"},
	{OpSecretSet, "PUT a new secret version (durable: fsync'd); --names N cycles through N names"},
	{OpSecretList, "GET the first page of the secret list (maxresults 25)"},
	{OpRS256, "RSA-2048 sign, RS256 (PKCS #1 v1.5)"},
	{OpPS256, "RSA-2048 sign, PS256 (PSS)"},
	{OpES256, "P-256 sign, ES256"},
	{OpWrap, "RSA-2048 wrapkey, RSA-OAEP-256 (public-key operation)"},
	{OpUnwrap, "RSA-2048 unwrapkey, RSA-OAEP-256 (private-key operation)"},
	{OpAESGCM, "AES-256-GCM encrypt on a managed HSM key (needs --hsm-url)"},
	{OpHSMRS256, "RSA-HSM 2048 sign, RS256, in the dev server's SoftHSM2 token; raw: C_SignInit + C_Sign on the same token object from this process"},
	{OpHSMES256, "EC-HSM P-256 sign, ES256, in the dev server's SoftHSM2 token; raw: as hsm-sign-rs256"},
}

// request is what a worker sends.
type request struct {
	method, path string
	body         []byte
}

// op is an operation ready to run: next builds the i-th request, raw
// returns a fresh instance of the bare primitive (one per goroutine).
type op struct {
	next    func(i int64, rng *mrand.Rand) request
	raw     func() func() error
	rawName string
	// rawGoroutines, when > 0, is how many goroutines run raw (default:
	// GOMAXPROCS, one per core).
	rawGoroutines int
	// rawInit, when set, runs before the raw phase (and rawClose after).
	rawInit  func() error
	rawClose func()
}

// session is an authenticated client of one vault (or managed HSM).
type session struct {
	hc     *http.Client
	base   string // https://name.vault.localhost:port/
	caFile string
	addr   string // the listener every host name is dialled to
	tok    *token
	// workers, when set, are one client per worker (HTTP/2, one
	// connection each); otherwise the workers share hc.
	workers []*http.Client
}

// call sends one request and returns the body; any status but 200 is an error.
func (s *session) call(ctx context.Context, method, path string, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, rd)
	if err != nil {
		return nil, err
	}
	tok, err := s.tok.get(ctx)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, clip(string(out), 300))
	}
	return out, nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

const apiVersion = "?api-version=7.6"

// secretName is the i-th benchmark secret.
func secretName(prefix string, i int64, names int64) string {
	if names <= 1 {
		return prefix
	}
	return prefix + "-" + strconv.FormatInt(i, 10)
}

// setup prepares cfg.Op on the server and returns it.
func setup(ctx context.Context, s *session, cfg *Config) (*op, error) {
	digest := sha256.Sum256([]byte("keyward bench"))
	switch cfg.Op {
	case OpSecretGet, OpSecretSet, OpSecretList:
		value := make([]byte, cfg.SecretSize)
		for i := range value {
			value[i] = 'a' + byte(i%26)
		}
		body, _ := json.Marshal(map[string]string{"value": string(value)})
		names := int64(cfg.Names)
		o := &op{rawName: fmt.Sprintf("AES-256-GCM open of a %d-byte sealed version", cfg.SecretSize+sealedOverhead)}
		o.raw = rawGCM(cfg.SecretSize+sealedOverhead, false)
		switch cfg.Op {
		case OpSecretGet:
			if cfg.Populate || names <= 1 {
				if err := populate(ctx, s, cfg, body); err != nil {
					return nil, err
				}
			}
			o.next = func(_ int64, rng *mrand.Rand) request {
				i := int64(0)
				if names > 1 {
					i = rng.Int64N(names)
				}
				return request{method: http.MethodGet, path: "secrets/" + secretName(cfg.Prefix, i, names) + "/" + apiVersion}
			}
		case OpSecretSet:
			o.rawName = fmt.Sprintf("AES-256-GCM seal of a %d-byte version (the fsync is not in it)", cfg.SecretSize+sealedOverhead)
			o.raw = rawGCM(cfg.SecretSize+sealedOverhead, true)
			o.next = func(i int64, _ *mrand.Rand) request {
				return request{method: http.MethodPut, path: "secrets/" + secretName(cfg.Prefix, i%max(names, 1), names) + apiVersion, body: body}
			}
		case OpSecretList:
			if cfg.Populate {
				if err := populate(ctx, s, cfg, body); err != nil {
					return nil, err
				}
			}
			o.rawName = fmt.Sprintf("26 AES-256-GCM opens of %d-byte versions (one page)", cfg.SecretSize+sealedOverhead)
			one := rawGCM(cfg.SecretSize+sealedOverhead, false)
			o.raw = func() func() error {
				f := one()
				return func() error {
					for range 26 {
						if err := f(); err != nil {
							return err
						}
					}
					return nil
				}
			}
			o.next = func(int64, *mrand.Rand) request {
				return request{method: http.MethodGet, path: "secrets" + apiVersion + "&maxresults=25"}
			}
		}
		return o, nil

	case OpRS256, OpPS256, OpWrap, OpUnwrap:
		version, err := createKey(ctx, s, cfg.Prefix+"-rsa", map[string]any{"kty": "RSA", "key_size": 2048})
		if err != nil {
			return nil, err
		}
		priv, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		path := "keys/" + cfg.Prefix + "-rsa/" + version + "/"
		switch cfg.Op {
		case OpRS256, OpPS256:
			alg := map[string]string{OpRS256: "RS256", OpPS256: "PS256"}[cfg.Op]
			body, _ := json.Marshal(map[string]string{"alg": alg, "value": b64(digest[:])})
			o := &op{next: constReq(http.MethodPost, path+"sign"+apiVersion, body)}
			if cfg.Op == OpRS256 {
				o.rawName = "rsa.SignPKCS1v15, RSA-2048, SHA-256"
				o.raw = each(func() error { _, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, digest[:]); return err })
			} else {
				o.rawName = "rsa.SignPSS, RSA-2048, SHA-256, salt = hash length"
				opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}
				o.raw = each(func() error { _, err := rsa.SignPSS(rand.Reader, priv, crypto.SHA256, digest[:], opts); return err })
			}
			return o, nil
		case OpWrap:
			dek := make([]byte, 32)
			rand.Read(dek)
			body, _ := json.Marshal(map[string]string{"alg": "RSA-OAEP-256", "value": b64(dek)})
			return &op{next: constReq(http.MethodPost, path+"wrapkey"+apiVersion, body),
				rawName: "rsa.EncryptOAEP, RSA-2048, SHA-256, 32-byte key",
				raw: each(func() error {
					_, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &priv.PublicKey, dek, nil)
					return err
				})}, nil
		default: // OpUnwrap
			dek := make([]byte, 32)
			rand.Read(dek)
			out, err := s.call(ctx, http.MethodPost, path+"wrapkey"+apiVersion, map[string]string{"alg": "RSA-OAEP-256", "value": b64(dek)})
			if err != nil {
				return nil, err
			}
			var res struct{ Value string }
			if err := json.Unmarshal(out, &res); err != nil {
				return nil, err
			}
			body, _ := json.Marshal(map[string]string{"alg": "RSA-OAEP-256", "value": res.Value})
			ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &priv.PublicKey, dek, nil)
			if err != nil {
				return nil, err
			}
			return &op{next: constReq(http.MethodPost, path+"unwrapkey"+apiVersion, body),
				rawName: "rsa.DecryptOAEP, RSA-2048, SHA-256",
				raw: each(func() error {
					_, err := rsa.DecryptOAEP(sha256.New(), nil, priv, ct, nil)
					return err
				})}, nil
		}

	case OpES256:
		version, err := createKey(ctx, s, cfg.Prefix+"-ec", map[string]any{"kty": "EC", "crv": "P-256"})
		if err != nil {
			return nil, err
		}
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		body, _ := json.Marshal(map[string]string{"alg": "ES256", "value": b64(digest[:])})
		return &op{next: constReq(http.MethodPost, "keys/"+cfg.Prefix+"-ec/"+version+"/sign"+apiVersion, body),
			rawName: "ecdsa.SignASN1, P-256",
			raw:     each(func() error { _, err := ecdsa.SignASN1(rand.Reader, priv, digest[:]); return err })}, nil

	case OpHSMRS256, OpHSMES256:
		d := s.tok.d.HSM
		if d == nil {
			return nil, fmt.Errorf("%s needs the dev server's SoftHSM2 token, and its dev.json has none: install SoftHSM2 (apt-get install -y softhsm2) or point KEYWARD_HSM_MODULE at its library, and restart the dev server", cfg.Op)
		}
		es := cfg.Op == OpHSMES256
		name, params, alg := cfg.Prefix+"-hsm-rsa", map[string]any{"kty": "RSA-HSM", "key_size": 2048}, "RS256"
		rawName := "C_SignInit + C_Sign, CKM_RSA_PKCS over DigestInfo ‖ SHA-256, RSA 2048, same token object (SoftHSM2)"
		if es {
			name, params, alg = cfg.Prefix+"-hsm-ec", map[string]any{"kty": "EC-HSM", "crv": "P-256"}, "ES256"
			rawName = "C_SignInit + C_Sign, CKM_ECDSA, P-256, same token object (SoftHSM2)"
		}
		version, err := createKey(ctx, s, name, params)
		if err != nil {
			return nil, err
		}
		body, _ := json.Marshal(map[string]string{"alg": alg, "value": b64(digest[:])})
		r := newHSMRaw(d, version, es, digest[:])
		// The raw side runs as many token sessions as the server's load
		// has requests in flight (the server's own pool then bounds how
		// many reach the token: hsm.sessions, 8 by default).
		return &op{next: constReq(http.MethodPost, "keys/"+name+"/"+version+"/sign"+apiVersion, body),
			rawName: rawName, raw: r.each, rawGoroutines: cfg.Concurrency, rawInit: r.init, rawClose: r.close}, nil

	case OpAESGCM:
		if cfg.HSMURL == "" {
			return nil, fmt.Errorf("%s runs against a managed HSM: give --hsm-url https://NAME.managedhsm.localhost:PORT/", OpAESGCM)
		}
		version, err := createKey(ctx, s, cfg.Prefix+"-aes", map[string]any{"kty": "oct-HSM", "key_size": 256})
		if err != nil {
			return nil, err
		}
		plain := make([]byte, 32)
		rand.Read(plain)
		body, _ := json.Marshal(map[string]string{"alg": "A256GCM", "value": b64(plain)})
		return &op{next: constReq(http.MethodPost, "keys/"+cfg.Prefix+"-aes/"+version+"/encrypt"+apiVersion, body),
			rawName: "AES-256-GCM seal of 32 bytes", raw: rawGCM(32, true)}, nil
	}
	return nil, fmt.Errorf("unknown operation %q (see --help)", cfg.Op)
}

// sealedOverhead approximates the JSON around a secret value in a stored
// version (attributes, version, content type).
const sealedOverhead = 150

func constReq(method, path string, body []byte) func(int64, *mrand.Rand) request {
	return func(int64, *mrand.Rand) request { return request{method: method, path: path, body: body} }
}

func each(f func() error) func() func() error { return func() func() error { return f } }

// rawGCM is one AES-256-GCM open (or seal) of an n-byte plaintext with a
// storage-key-sized AAD, what the barrier does per stored value.
func rawGCM(n int, seal bool) func() func() error {
	return func() func() error {
		key := make([]byte, 32)
		rand.Read(key)
		block, _ := aes.NewCipher(key)
		aead, _ := cipher.NewGCMWithRandomNonce(block)
		aad := []byte("v/0123456789abcdef/s/v/bench/0123456789abcdef0123456789abcdef")
		plain := make([]byte, n)
		blob := aead.Seal(nil, nil, plain, aad)
		buf := make([]byte, 0, len(blob))
		if seal {
			return func() error { aead.Seal(buf[:0], nil, plain, aad); return nil }
		}
		return func() error { _, err := aead.Open(buf[:0], nil, blob, aad); return err }
	}
}

// createKey creates (or adds a version to) a key and returns the version.
func createKey(ctx context.Context, s *session, name string, params map[string]any) (string, error) {
	out, err := s.call(ctx, http.MethodPost, "keys/"+name+"/create"+apiVersion, params)
	if err != nil {
		return "", err
	}
	var res struct {
		Key struct {
			Kid string `json:"kid"`
		} `json:"key"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return "", err
	}
	i := strings.LastIndexByte(res.Key.Kid, '/')
	if i < 0 || i == len(res.Key.Kid)-1 {
		return "", fmt.Errorf("create key: unexpected kid %q", res.Key.Kid)
	}
	return res.Key.Kid[i+1:], nil
}

// populate writes the secrets a get or list run reads: one, or cfg.Names
// of them, with cfg.Concurrency writers.
func populate(ctx context.Context, s *session, cfg *Config, body []byte) error {
	names := int64(max(cfg.Names, 1))
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, cfg.Concurrency)
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= names || ctx.Err() != nil {
					return
				}
				if _, err := s.call(ctx, http.MethodPut, "secrets/"+secretName(cfg.Prefix, i, names)+apiVersion, json.RawMessage(body)); err != nil {
					errs <- err
					return
				}
				if cfg.Progress != nil && names >= 10000 && (i+1)%(names/10) == 0 {
					fmt.Fprintf(cfg.Progress, "populated %d of %d secrets\n", i+1, names)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return fmt.Errorf("populating secrets: %w", err)
	}
	return ctx.Err()
}
