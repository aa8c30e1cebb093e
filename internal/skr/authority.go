package skr

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// ErrToken means an attestation token is refused: malformed, not from a
// configured authority, a bad signature, expired, or without a usable
// runtime key. Messages never contain the token.
var ErrToken = errors.New("skr: attestation token refused")

// Authority is an attestation authority Keyward trusts: its issuer URL
// (the token's iss) and its signing keys, pinned in configuration (the
// service sends no traffic to fetch {issuer}/certs).
type Authority struct {
	Issuer string
	Keys   jose.JSONWebKeySet
}

// ParseJWKS reads a JSON Web Key Set ({"keys":[…]}) of public keys.
func ParseJWKS(b []byte) (jose.JSONWebKeySet, error) {
	var s jose.JSONWebKeySet
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("skr: the JWKS is not a JSON Web Key Set: %w", err)
	}
	if len(s.Keys) == 0 {
		return s, errors.New("skr: the JWKS has no keys")
	}
	for _, k := range s.Keys {
		if !k.IsPublic() || !k.Valid() {
			return s, errors.New("skr: a JWKS key is not a valid public key")
		}
	}
	return s, nil
}

// Verifier checks attestation tokens against the configured authorities.
type Verifier struct {
	auths  []Authority
	leeway time.Duration
}

// NewVerifier returns a verifier of tokens from auths, allowing a clock
// skew of one minute on exp and nbf.
func NewVerifier(auths []Authority) *Verifier {
	return &Verifier{auths: slices.Clone(auths), leeway: time.Minute}
}

// Authorities lists the configured issuers.
func (v *Verifier) Authorities() []string {
	var out []string
	for _, a := range v.auths {
		out = append(out, a.Issuer)
	}
	return out
}

// Token is a verified attestation token.
type Token struct {
	Issuer     string
	Claims     map[string]any
	RuntimeKid string
	RuntimeKey *rsa.PublicKey // the key the released key is wrapped to
}

var tokenAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512}

// MaxTokenSize bounds an attestation token (real MAA tokens are a few KiB).
const MaxTokenSize = 64 << 10

// Verify checks a compact JWS attestation token: one signature by a key of
// the authority named by its iss, a current exp (required) and nbf, and a
// runtime key in x-ms-runtime.keys (kid TpmEphemeralEncryptionKey, else
// the first RSA key usable for encryption, 2048 to 4096 bits).
func (v *Verifier) Verify(token string, now time.Time) (*Token, error) {
	if len(token) > MaxTokenSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrToken, MaxTokenSize)
	}
	jws, err := jose.ParseSigned(token, tokenAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%w: not a compact JWS with one RS*, PS* or ES* signature", ErrToken)
	}
	var unverified struct {
		Iss string `json:"iss"`
	}
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &unverified); err != nil || unverified.Iss == "" {
		return nil, fmt.Errorf("%w: the payload has no issuer (iss)", ErrToken)
	}
	var auth *Authority
	for i := range v.auths {
		if sameAuthority(v.auths[i].Issuer, unverified.Iss) {
			auth = &v.auths[i]
		}
	}
	if auth == nil {
		return nil, fmt.Errorf("%w: issuer %.200q is not a configured attestation authority", ErrToken, unverified.Iss)
	}
	kid := jws.Signatures[0].Header.KeyID
	var keys []jose.JSONWebKey
	if kid != "" {
		keys = auth.Keys.Key(kid)
	} else {
		keys = auth.Keys.Keys
	}
	var payload []byte
	for _, k := range keys {
		if p, err := jws.Verify(k); err == nil {
			payload = p
			break
		}
	}
	if payload == nil {
		return nil, fmt.Errorf("%w: the signature does not verify with the keys of %s", ErrToken, auth.Issuer)
	}
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	var claims map[string]any
	if err := d.Decode(&claims); err != nil {
		return nil, fmt.Errorf("%w: the payload is not a JSON object", ErrToken)
	}
	exp, ok := numClaim(claims, "exp")
	if !ok {
		return nil, fmt.Errorf("%w: no expiry (exp)", ErrToken)
	}
	if now.After(time.Unix(exp, 0).Add(v.leeway)) {
		return nil, fmt.Errorf("%w: expired", ErrToken)
	}
	if nbf, ok := numClaim(claims, "nbf"); ok && now.Add(v.leeway).Before(time.Unix(nbf, 0)) {
		return nil, fmt.Errorf("%w: not valid yet (nbf)", ErrToken)
	}
	rkid, rkey, err := runtimeKey(claims)
	if err != nil {
		return nil, err
	}
	return &Token{Issuer: auth.Issuer, Claims: claims, RuntimeKid: rkid, RuntimeKey: rkey}, nil
}

func numClaim(claims map[string]any, name string) (int64, bool) {
	n, ok := claims[name].(json.Number)
	if !ok {
		return 0, false
	}
	i, err := n.Int64()
	if err != nil {
		f, ferr := n.Float64()
		if ferr != nil {
			return 0, false
		}
		i = int64(f)
	}
	return i, true
}

// runtimeKey finds the wrapping key in x-ms-runtime.keys.
func runtimeKey(claims map[string]any) (string, *rsa.PublicKey, error) {
	rt, _ := Lookup(claims, "x-ms-runtime.keys")
	list, ok := rt.([]any)
	if !ok || len(list) == 0 {
		return "", nil, fmt.Errorf("%w: no runtime key (x-ms-runtime.keys) to wrap the key to", ErrToken)
	}
	var best *jose.JSONWebKey
	for _, item := range list {
		raw, err := json.Marshal(item)
		if err != nil {
			continue
		}
		var k jose.JSONWebKey
		if k.UnmarshalJSON(raw) != nil {
			continue
		}
		pub, ok := k.Key.(*rsa.PublicKey)
		if !ok || pub.N.BitLen() < 2048 || pub.N.BitLen() > 4096 {
			continue
		}
		if ops, ok := item.(map[string]any)["key_ops"].([]any); ok && !slices.Contains(ops, any("encrypt")) {
			continue
		}
		if k.KeyID == "TpmEphemeralEncryptionKey" {
			return k.KeyID, pub, nil
		}
		if best == nil {
			best = &k
		}
	}
	if best == nil {
		return "", nil, fmt.Errorf("%w: no RSA runtime key (2048 to 4096 bits, key_ops encrypt) in x-ms-runtime.keys", ErrToken)
	}
	return best.KeyID, best.Key.(*rsa.PublicKey), nil
}

// LocalAuthority is an attestation authority Keyward runs itself: the dev
// server's, and tests'. It signs tokens (RS256) with a key kept in a file.
type LocalAuthority struct {
	Issuer string
	key    *rsa.PrivateKey
	kid    string
}

// Files of a local authority in its directory.
const (
	LocalKeyFile  = "attestation-authority.key"       // PKCS #8 PEM, 0600
	LocalJWKSFile = "attestation-authority.jwks.json" // the public JWKS to pin
)

// LoadOrCreateLocalAuthority opens the authority kept in dir, creating its
// key on first use, and (re)writes its JWKS file.
func LoadOrCreateLocalAuthority(dir, issuer string) (*LocalAuthority, error) {
	path := filepath.Join(dir, LocalKeyFile)
	var key *rsa.PrivateKey
	if b, err := os.ReadFile(path); err == nil {
		p, _ := pem.Decode(b)
		if p == nil {
			return nil, fmt.Errorf("skr: %s is not PEM", path)
		}
		k, err := x509.ParsePKCS8PrivateKey(p.Bytes)
		if err != nil {
			return nil, fmt.Errorf("skr: %s: %w", path, err)
		}
		var ok bool
		if key, ok = k.(*rsa.PrivateKey); !ok {
			return nil, fmt.Errorf("skr: %s is not an RSA key", path)
		}
	} else if errors.Is(err, os.ErrNotExist) {
		if key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, err
		}
	} else {
		return nil, err
	}
	a := NewLocalAuthority(issuer, key)
	js, err := json.MarshalIndent(a.JWKS(), "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, LocalJWKSFile), js, 0o644); err != nil {
		return nil, err
	}
	return a, nil
}

// NewLocalAuthority makes an authority that signs with key.
func NewLocalAuthority(issuer string, key *rsa.PrivateKey) *LocalAuthority {
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	sum := sha256.Sum256(der)
	return &LocalAuthority{Issuer: issuer, key: key, kid: base64.RawURLEncoding.EncodeToString(sum[:16])}
}

// JWKS is the authority's public key set, to pin in configuration.
func (a *LocalAuthority) JWKS() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &a.key.PublicKey, KeyID: a.kid, Algorithm: string(jose.RS256), Use: "sig"}}}
}

// Authority is the configuration that trusts a.
func (a *LocalAuthority) Authority() Authority { return Authority{Issuer: a.Issuer, Keys: a.JWKS()} }

// Mint signs an attestation token with claims, iss, iat, nbf and exp
// (now + ttl). runtimeKey, when set, becomes x-ms-runtime.keys[0] with kid
// TpmEphemeralEncryptionKey: the key a release is wrapped to.
func (a *LocalAuthority) Mint(claims map[string]any, runtimeKey *rsa.PublicKey, now time.Time, ttl time.Duration) (string, error) {
	c := map[string]any{}
	for k, v := range claims {
		c[k] = v
	}
	c["iss"], c["iat"], c["nbf"], c["exp"] = a.Issuer, now.Unix(), now.Unix(), now.Add(ttl).Unix()
	if runtimeKey != nil {
		jwk := jose.JSONWebKey{Key: runtimeKey, KeyID: "TpmEphemeralEncryptionKey"}
		raw, err := jwk.MarshalJSON()
		if err != nil {
			return "", err
		}
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		m["key_ops"] = []string{"encrypt"}
		rt, _ := c["x-ms-runtime"].(map[string]any)
		if rt == nil {
			rt = map[string]any{}
		}
		rt["keys"] = []any{m}
		c["x-ms-runtime"] = rt
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: a.key, KeyID: a.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", err
	}
	jws, err := s.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// Signer signs release responses (RS256, with the x5c and x5t#S256 of its
// certificate, as Key Vault does).
type Signer struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

// SignerKey is a release signing key as stored (sealed by the barrier):
// its PKCS #8 key and self-signed certificate. A retired key no longer
// signs and stays published until it is dropped.
type SignerKey struct {
	Kid     string     `json:"kid"` // base64url SHA-256 of the certificate (x5t#S256)
	Created time.Time  `json:"created"`
	Retired *time.Time `json:"retired,omitempty"`
	PKCS8   []byte     `json:"pkcs8"`
	Cert    []byte     `json:"cert"` // DER
}

// NewSignerKey makes a release signing key with a self-signed certificate
// for name, valid from now for ten years.
func NewSignerKey(name string, now time.Time) (*SignerKey, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	p8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(der)
	return &SignerKey{Kid: base64.RawURLEncoding.EncodeToString(sum[:]), Created: now.UTC(), PKCS8: p8, Cert: der}, nil
}

// Signer parses the stored key into a signer.
func (k *SignerKey) Signer() (*Signer, error) {
	priv, err := x509.ParsePKCS8PrivateKey(k.PKCS8)
	if err != nil {
		return nil, fmt.Errorf("skr: release signing key %s: %w", k.Kid, err)
	}
	rk, ok := priv.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("skr: release signing key %s is not RSA", k.Kid)
	}
	cert, err := x509.ParseCertificate(k.Cert)
	if err != nil {
		return nil, fmt.Errorf("skr: release signing certificate %s: %w", k.Kid, err)
	}
	if !rk.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("skr: release signing key %s does not match its certificate", k.Kid)
	}
	return &Signer{key: rk, cert: cert}, nil
}

// JWK is the key's public half as a verifier fetches it: kid, RS256, use
// sig, x5c and x5t#S256 (what a release response's header names).
func (k *SignerKey) JWK() (jose.JSONWebKey, error) {
	cert, err := x509.ParseCertificate(k.Cert)
	if err != nil {
		return jose.JSONWebKey{}, err
	}
	sum := sha256.Sum256(k.Cert)
	return jose.JSONWebKey{Key: cert.PublicKey, KeyID: k.Kid, Algorithm: string(jose.RS256), Use: "sig",
		Certificates: []*x509.Certificate{cert}, CertificateThumbprintSHA256: sum[:]}, nil
}

// NewSigner makes a signer with a new key and a self-signed certificate
// for name, valid from now for ten years (not kept anywhere).
func NewSigner(name string, now time.Time) (*Signer, error) {
	k, err := NewSignerKey(name, now)
	if err != nil {
		return nil, err
	}
	defer clear(k.PKCS8)
	return k.Signer()
}

// Certificate is the signer's certificate (clients check x5c against it).
func (s *Signer) Certificate() *x509.Certificate { return s.cert }

// Sign returns the compact JWS of payload.
func (s *Signer) Sign(payload []byte) (string, error) {
	sum := sha256.Sum256(s.cert.Raw)
	opts := (&jose.SignerOptions{}).WithType("JWT").
		WithHeader("x5c", []string{base64.StdEncoding.EncodeToString(s.cert.Raw)}).
		WithHeader("x5t#S256", base64.RawURLEncoding.EncodeToString(sum[:]))
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: s.key}, opts)
	if err != nil {
		return "", err
	}
	jws, err := sg.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// Nonce is the nonce the authority bound into the token: the "nonce"
// claim (what Microsoft Azure Attestation returns for the attestation
// request's nonce), else x-ms-runtime.client-payload.nonce (runtime data
// the attested workload chose). ok is false when the token carries
// neither claim; a claim that is not a string is bound to "" (which no
// request nonce matches).
func (t *Token) Nonce() (nonce string, ok bool) {
	for _, name := range []string{"nonce", "x-ms-runtime.client-payload.nonce"} {
		if v, found := Lookup(t.Claims, name); found {
			s, _ := v.(string)
			return s, true
		}
	}
	return "", false
}

// CheckNonce binds a release request's nonce to its attestation token
// (docs/HSM.md, "Secure key release"): a nonce in either must be in both,
// and equal, so a token minted for one request cannot serve another that
// names a different nonce, and a request that asks for freshness gets it.
// The reason names no nonce value.
func CheckNonce(t *Token, requestNonce string) (reason string, ok bool) {
	tn, has := t.Nonce()
	switch {
	case !has && requestNonce == "":
		return "", true
	case !has:
		return "the request has a nonce and the attestation token binds none (claim nonce or x-ms-runtime.client-payload.nonce)", false
	case requestNonce == "":
		return "the attestation token is bound to a nonce and the request has none", false
	case tn == "" || subtle.ConstantTimeCompare([]byte(tn), []byte(requestNonce)) != 1:
		return "the request's nonce is not the one the attestation token is bound to", false
	}
	return "", true
}
