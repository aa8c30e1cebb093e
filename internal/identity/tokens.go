package identity

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/storage"
)

const (
	signingKeysKey = "sys/identity/signing-keys"
	// Skew is how far exp and nbf may be off before a token is refused.
	Skew = 5 * time.Minute
	// DefaultTokenLifetime is the lifetime of an access token.
	DefaultTokenLifetime = time.Hour
	// retiredKeyKeep is how long a rotated-out signing key stays in the JWKS
	// and verifies tokens: longer than any token it signed can live.
	retiredKeyKeep  = 24 * time.Hour
	maxCachedTokens = 100_000
)

// ErrInvalidToken is the one error for every token that fails validation.
// The reason goes to Validate's second return for the audit log, never to
// the client beyond a fixed phrase.
var ErrInvalidToken = errors.New("identity: invalid token")

// Claims are the claims of an access token, named as Entra names them.
type Claims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  string   `json:"aud"`
	IssuedAt  int64    `json:"iat"`
	NotBefore int64    `json:"nbf"`
	Expires   int64    `json:"exp"`
	TenantID  string   `json:"tid"`
	ObjectID  string   `json:"oid"`
	AZP       string   `json:"azp,omitempty"`
	AZPACR    string   `json:"azpacr,omitempty"`
	AppID     string   `json:"appid,omitempty"`
	AppIDACR  string   `json:"appidacr,omitempty"`
	IDType    string   `json:"idtyp,omitempty"`
	Version   string   `json:"ver"`
	Scope     string   `json:"scp,omitempty"`
	Roles     []string `json:"roles,omitempty"`
	TokenID   string   `json:"uti,omitempty"`
}

// jwt.Claims, so the library checks times, issuer and audience.
func (c *Claims) GetExpirationTime() (*jwt.NumericDate, error) { return numeric(c.Expires), nil }
func (c *Claims) GetIssuedAt() (*jwt.NumericDate, error)       { return numeric(c.IssuedAt), nil }
func (c *Claims) GetNotBefore() (*jwt.NumericDate, error)      { return numeric(c.NotBefore), nil }
func (c *Claims) GetIssuer() (string, error)                   { return c.Issuer, nil }
func (c *Claims) GetSubject() (string, error)                  { return c.Subject, nil }
func (c *Claims) GetAudience() (jwt.ClaimStrings, error)       { return jwt.ClaimStrings{c.Audience}, nil }

func numeric(s int64) *jwt.NumericDate {
	if s == 0 {
		return nil
	}
	return jwt.NewNumericDate(time.Unix(s, 0))
}

// Authority issues and validates tokens for every tenant in the directory.
type Authority struct {
	dir      *Directory
	store    Store
	clock    clock.Clock
	base     string // authority URL with a trailing slash, e.g. https://localhost:8443/
	Lifetime time.Duration

	mu   sync.RWMutex
	keys []*signingKey // oldest first; the last one signs

	ext authorityExt // credentials beyond client secrets: grants.go

	guard atomic.Pointer[tokenGuard] // token endpoint limits: tokenlimits.go

	cacheMu sync.RWMutex
	cache   map[[32]byte]*Claims

	// hashBufs holds scratch buffers for hashing a token without
	// allocating a copy of it per request (*[]byte, cleared after use).
	hashBufs sync.Pool
}

type signingKey struct {
	Kid     string     `json:"kid"`
	Created time.Time  `json:"created"`
	Retired *time.Time `json:"retired,omitempty"`
	PKCS8   []byte     `json:"pkcs8"`
	priv    *rsa.PrivateKey
}

// NewAuthority returns an authority whose issuer URLs start with
// authorityURL (scheme, host, port: what clients configure as
// ActiveDirectoryAuthorityHost).
func NewAuthority(dir *Directory, store Store, clk clock.Clock, authorityURL string) *Authority {
	if !strings.HasSuffix(authorityURL, "/") {
		authorityURL += "/"
	}
	a := &Authority{dir: dir, store: store, clock: clk, base: authorityURL,
		Lifetime: DefaultTokenLifetime, cache: map[[32]byte]*Claims{}}
	a.SetTokenLimits(DefaultTokenLimits)
	return a
}

// Directory returns the directory the authority authenticates against.
func (a *Authority) Directory() *Directory { return a.dir }

// BaseURL is the authority URL with a trailing slash.
func (a *Authority) BaseURL() string { return a.base }

// Issuer is the v2.0 issuer of tenant: the discovery document's issuer and
// every token's iss.
func (a *Authority) Issuer(tenant string) string { return a.base + tenant + "/v2.0" }

// Load reads the signing keys, creating the first one if there is none.
// It is called after the barrier is unsealed.
func (a *Authority) Load(ctx context.Context) error {
	var keys []*signingKey
	err := a.store.Update(ctx, func(tx barrier.Tx) error {
		keys = nil
		raw, err := tx.Get(signingKeysKey)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			k, err := newSigningKey(a.clock.Now())
			if err != nil {
				return err
			}
			keys = []*signingKey{k}
			return putTx(tx, signingKeysKey, keys)
		case err != nil:
			return err
		}
		defer clear(raw)
		return json.Unmarshal(raw, &keys)
	})
	if err != nil {
		return fmt.Errorf("identity: loading signing keys: %w", err)
	}
	for _, k := range keys {
		if err := k.parse(); err != nil {
			return err
		}
	}
	a.mu.Lock()
	a.keys = keys
	a.mu.Unlock()
	a.flushCache()
	return nil
}

// Unload forgets the signing keys (on seal).
func (a *Authority) Unload() {
	a.mu.Lock()
	for _, k := range a.keys {
		clear(k.PKCS8)
	}
	a.keys = nil
	a.mu.Unlock()
	a.flushCache()
}

// RotateSigningKey makes a new signing key active. The previous one stays
// in the JWKS and keeps verifying tokens for a day, then is dropped.
func (a *Authority) RotateSigningKey(ctx context.Context) (kid string, err error) {
	now := a.clock.Now()
	nk, err := newSigningKey(now)
	if err != nil {
		return "", err
	}
	var keys []*signingKey
	err = a.store.Update(ctx, func(tx barrier.Tx) error {
		keys = nil
		raw, err := tx.Get(signingKeysKey)
		if err != nil {
			return err
		}
		defer clear(raw)
		if err := json.Unmarshal(raw, &keys); err != nil {
			return err
		}
		kept := keys[:0]
		for _, k := range keys {
			if k.Retired == nil {
				t := now.UTC()
				k.Retired = &t
			}
			if now.Sub(*k.Retired) < retiredKeyKeep {
				kept = append(kept, k)
			}
		}
		keys = append(kept, nk)
		return putTx(tx, signingKeysKey, keys)
	})
	if err != nil {
		return "", err
	}
	for _, k := range keys {
		if err := k.parse(); err != nil {
			return "", err
		}
	}
	a.mu.Lock()
	a.keys = keys
	a.mu.Unlock()
	a.flushCache()
	return nk.Kid, nil
}

func newSigningKey(now time.Time) (*signingKey, error) {
	priv, err := rsa.GenerateKey(nil, 2048)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return &signingKey{Kid: thumbprint(&priv.PublicKey), Created: now.UTC(), PKCS8: der, priv: priv}, nil
}

func (k *signingKey) parse() error {
	if k.priv != nil {
		return nil
	}
	key, err := x509.ParsePKCS8PrivateKey(k.PKCS8)
	if err != nil {
		return fmt.Errorf("identity: signing key %s: %w", k.Kid, err)
	}
	priv, ok := key.(*rsa.PrivateKey)
	if !ok {
		return fmt.Errorf("identity: signing key %s is not RSA", k.Kid)
	}
	k.priv = priv
	return nil
}

// thumbprint is the RFC 7638 JWK thumbprint, used as kid.
func thumbprint(pub *rsa.PublicKey) string {
	e := base64.RawURLEncoding.EncodeToString(bigEndian(pub.E))
	n := base64.RawURLEncoding.EncodeToString(pub.N.Bytes())
	sum := sha256.Sum256([]byte(`{"e":"` + e + `","kty":"RSA","n":"` + n + `"}`))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func bigEndian(e int) []byte {
	b := []byte{byte(e >> 24), byte(e >> 16), byte(e >> 8), byte(e)}
	for len(b) > 1 && b[0] == 0 {
		b = b[1:]
	}
	return b
}

// JWK is a public signing key as published in the JWKS.
type JWK struct {
	Kty string   `json:"kty"`
	Use string   `json:"use"`
	Kid string   `json:"kid"`
	N   string   `json:"n"`
	E   string   `json:"e"`
	Alg string   `json:"alg"`
	X5t string   `json:"x5t,omitempty"`
	X5c []string `json:"x5c,omitempty"`
}

// JWKS returns every signing key that may have signed a live token.
func (a *Authority) JWKS() []JWK {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := make([]JWK, 0, len(a.keys))
	for i := len(a.keys) - 1; i >= 0; i-- { // newest first
		k := a.keys[i]
		out = append(out, JWK{Kty: "RSA", Use: "sig", Kid: k.Kid, Alg: "RS256",
			N: base64.RawURLEncoding.EncodeToString(k.priv.N.Bytes()),
			E: base64.RawURLEncoding.EncodeToString(bigEndian(k.priv.E))})
	}
	return out
}

// IssueAppToken issues an app-only access token for sp, for resource.
func (a *Authority) IssueAppToken(sp *ServicePrincipal, resource string) (string, time.Time, error) {
	now := a.clock.Now()
	exp := now.Add(a.Lifetime)
	c := &Claims{
		Issuer:    a.Issuer(sp.TenantID),
		Subject:   sp.ObjectID,
		Audience:  resource,
		IssuedAt:  now.Unix(),
		NotBefore: now.Unix(),
		Expires:   exp.Unix(),
		TenantID:  sp.TenantID,
		ObjectID:  sp.ObjectID,
		AZP:       sp.AppID,
		AZPACR:    "1",
		AppID:     sp.AppID,
		AppIDACR:  "1",
		IDType:    "app",
		Version:   "2.0",
		TokenID:   NewID(),
	}
	tok, err := a.sign(c)
	return tok, exp, err
}

// TestOnlySign signs arbitrary claims with the current signing key, with
// the header fields of hdr added (kid is set to the signing key's). It
// mints tokens Validate would otherwise never see (a 10-year lifetime, a
// foreign issuer), for attack tests only: nothing outside tests calls it.
func (a *Authority) TestOnlySign(claims map[string]any, hdr map[string]any) (string, error) {
	a.mu.RLock()
	if len(a.keys) == 0 {
		a.mu.RUnlock()
		return "", errors.New("identity: no signing key loaded")
	}
	k := a.keys[len(a.keys)-1]
	a.mu.RUnlock()
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims(claims))
	for h, v := range hdr {
		t.Header[h] = v
	}
	t.Header["kid"] = k.Kid
	return t.SignedString(k.priv)
}

func (a *Authority) sign(c *Claims) (string, error) {
	a.mu.RLock()
	if len(a.keys) == 0 {
		a.mu.RUnlock()
		return "", errors.New("identity: no signing key loaded")
	}
	k := a.keys[len(a.keys)-1]
	a.mu.RUnlock()
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	t.Header["kid"] = k.Kid
	return t.SignedString(k.priv)
}

// Validate checks a bearer token: RS256 signature by one of our keys,
// issuer equal to the issuer of the token's own tenant, audience one of
// audiences, exp and nbf within Skew, a lifetime (exp - iat, exp - nbf,
// exp - now) no longer than Lifetime + Skew, and the subject claims present. The
// returned reason (for the audit log) never contains the token.
func (a *Authority) Validate(raw string, audiences []string) (*Claims, string, error) {
	if len(raw) > 16<<10 {
		return nil, "token too large", ErrInvalidToken
	}
	if !isCompactJWS(raw) {
		return nil, "malformed token", ErrInvalidToken
	}
	sum := a.tokenHash(raw)
	now := a.clock.Now()
	a.cacheMu.RLock()
	c := a.cache[sum]
	a.cacheMu.RUnlock()
	if c != nil {
		if reason := checkCached(c, audiences, now); reason != "" {
			return nil, reason, ErrInvalidToken
		}
		return c, "", nil
	}

	c = new(Claims)
	_, err := jwt.ParseWithClaims(raw, c, a.keyFunc,
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithLeeway(Skew),
		jwt.WithTimeFunc(a.clock.Now),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithAudience(audiences...),
		jwt.WithStrictDecoding(), // non-zero padding bits would make a second valid spelling of a token
	)
	if err != nil {
		return nil, tokenReason(err), ErrInvalidToken
	}
	if c.TenantID == "" || c.ObjectID == "" || c.NotBefore == 0 {
		return nil, "missing claims", ErrInvalidToken
	}
	if c.Issuer != a.Issuer(c.TenantID) {
		return nil, "wrong issuer", ErrInvalidToken
	}
	if a.tooLong(c, now) {
		return nil, "token lifetime too long", ErrInvalidToken
	}
	a.cacheMu.Lock()
	if len(a.cache) >= maxCachedTokens {
		for k, v := range a.cache { // drop expired entries, or everything if none
			if time.Unix(v.Expires, 0).Add(Skew).Before(now) {
				delete(a.cache, k)
			}
		}
		if len(a.cache) >= maxCachedTokens {
			clear(a.cache)
		}
	}
	a.cache[sum] = c
	a.cacheMu.Unlock()
	return c, "", nil
}

// tokenHash is SHA-256 of the token, the key of the cache of validated
// tokens. Hashing needs the token as bytes; a pooled buffer, cleared after
// use, saves copying it into a new allocation on every request.
func (a *Authority) tokenHash(raw string) [32]byte {
	bp, _ := a.hashBufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	b := append((*bp)[:0], raw...)
	sum := sha256.Sum256(b)
	clear(b)
	*bp = b[:0]
	a.hashBufs.Put(bp)
	return sum
}

// isCompactJWS reports whether raw holds only the characters of a compact
// JWS: base64url and dots. Go's base64 decoder skips CR and LF, so without
// this check a token with line breaks inserted into its signature would be
// a different string that still validates.
//
// It runs on every request over the whole token (about 1.3 KB): a table
// lookup per byte, OR-ed without a branch, instead of seven comparisons.
func isCompactJWS(raw string) bool {
	var bad byte
	for i := 0; i < len(raw); i++ {
		bad |= notJWSChar[raw[i]]
	}
	return bad == 0
}

// notJWSChar is 1 for every byte that is not base64url or '.'.
var notJWSChar = func() (t [256]byte) {
	for c := range t {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			t[c] = 1
		}
	}
	return t
}()

// tooLong reports whether c lives longer than this issuer issues tokens
// for: exp more than Lifetime (plus Skew) after iat, after nbf, or after
// now. Only a holder of a signing key can mint such a token, and a stolen
// key should not yield tokens that outlive its rotation (issue 12.5).
func (a *Authority) tooLong(c *Claims, now time.Time) bool {
	maxLife := int64((a.Lifetime + Skew) / time.Second)
	if c.Expires-now.Unix() > maxLife || c.Expires-c.NotBefore > maxLife {
		return true
	}
	return c.IssuedAt != 0 && c.Expires-c.IssuedAt > maxLife
}

func checkCached(c *Claims, audiences []string, now time.Time) string {
	if now.After(time.Unix(c.Expires, 0).Add(Skew)) {
		return "token expired"
	}
	if now.Add(Skew).Before(time.Unix(c.NotBefore, 0)) {
		return "token not yet valid"
	}
	for _, aud := range audiences {
		if c.Audience == aud {
			return ""
		}
	}
	return "wrong audience"
}

func tokenReason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token not yet valid"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "missing claims"
	}
	return "invalid token"
}

func (a *Authority) keyFunc(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	a.mu.RLock()
	defer a.mu.RUnlock()
	for _, k := range a.keys {
		if k.Kid == kid {
			return k.priv.Public().(crypto.PublicKey), nil
		}
	}
	return nil, jwt.ErrTokenUnverifiable
}

func (a *Authority) flushCache() {
	a.cacheMu.Lock()
	clear(a.cache)
	a.cacheMu.Unlock()
}
