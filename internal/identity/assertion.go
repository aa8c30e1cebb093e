package identity

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Client assertions (IDENTITY.md §1 and §7): a JWT the client signs with
// its certificate's key (iss = sub = client_id, x5t#S256 header), or an
// external OIDC token presented verbatim (workload identity federation).

const (
	maxAssertionBytes = 16 << 10
	// maxAssertionLifetime bounds exp - nbf of a certificate assertion:
	// MSAL uses ten minutes.
	maxAssertionLifetime = time.Hour
)

// assertionError is a failed client assertion: its code and description
// go to the client (AADSTS shape), never the assertion itself.
type assertionError struct {
	aadsts int
	desc   string
}

func (e *assertionError) Error() string { return e.desc }

func assertErr(code int, desc string) error { return &assertionError{aadsts: code, desc: desc} }

// unverified are the parts of an assertion read before its signature is
// checked, only to find the key to check it with.
type unverified struct {
	header map[string]any
	claims jwt.RegisteredClaims
}

// peekAssertion parses an assertion without verifying it.
func peekAssertion(raw string) (*unverified, error) {
	if len(raw) > maxAssertionBytes {
		return nil, assertErr(50027, "The client assertion is too large.")
	}
	var u unverified
	tok, _, err := jwt.NewParser().ParseUnverified(raw, &u.claims)
	if err != nil {
		return nil, assertErr(50027, "The client assertion is not a valid JWT.")
	}
	u.header = tok.Header
	return &u, nil
}

func (u *unverified) headerString(name string) string {
	s, _ := u.header[name].(string)
	return s
}

// decodeThumbprint accepts both base64 flavours clients send: Go uses
// standard base64 with padding, JS base64url (IDENTITY.md §1).
func decodeThumbprint(s string) []byte {
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.StdEncoding, base64.RawStdEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b
		}
	}
	return nil
}

// isCertificateAssertion tells a certificate assertion (signed by the
// client itself) from a federated token (signed by an external issuer).
func (u *unverified) isCertificateAssertion(clientID string) bool {
	return strings.EqualFold(u.claims.Issuer, clientID) &&
		(u.headerString("x5t#S256") != "" || u.headerString("x5t") != "")
}

// verifyCertificateAssertion checks a certificate assertion for sp: the
// header's thumbprint names one of the application's registered
// certificates (SHA-256, or SHA-1 with RS256 for ADFS-style clients), the
// signature verifies with its key (PS256, RS256 or ES256), iss = sub =
// client_id, aud is this tenant's token endpoint, the lifetime is short,
// and the jti was not seen before.
func (a *Authority) verifyCertificateAssertion(sp *ServicePrincipal, tenant, raw string, u *unverified) error {
	now := a.clock.Now()
	var match *ClientCertificate
	if t := decodeThumbprint(u.headerString("x5t#S256")); t != nil {
		for i := range sp.Certificates {
			if subtle.ConstantTimeCompare(sp.Certificates[i].ThumbprintSHA256, t) == 1 {
				match = &sp.Certificates[i]
			}
		}
	} else if t := decodeThumbprint(u.headerString("x5t")); t != nil {
		for i := range sp.Certificates {
			if subtle.ConstantTimeCompare(sp.Certificates[i].ThumbprintSHA1, t) == 1 {
				match = &sp.Certificates[i]
			}
		}
	}
	if match == nil {
		return assertErr(700027, "The certificate with identifier used to sign the client assertion is not registered on application.")
	}
	if now.Before(match.NotBefore) || now.After(match.NotAfter) {
		return assertErr(700027, "The certificate used to sign the client assertion is expired or not yet valid.")
	}
	cert, err := x509.ParseCertificate(match.DER)
	if err != nil {
		return assertErr(700027, "The registered certificate cannot be parsed.")
	}
	// With x5c (SendCertificateChain), the leaf must be the registered
	// certificate: the chain proves nothing the registration does not.
	if x5c, ok := u.header["x5c"].([]any); ok && len(x5c) > 0 {
		leaf, _ := x5c[0].(string)
		der, err := base64.StdEncoding.DecodeString(leaf)
		if err != nil || !bytes.Equal(der, match.DER) {
			return assertErr(700027, "The x5c leaf certificate is not the registered certificate.")
		}
	}
	var claims jwt.RegisteredClaims
	_, err = jwt.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return cert.PublicKey, nil },
		jwt.WithValidMethods([]string{"PS256", "RS256", "ES256"}),
		jwt.WithLeeway(Skew), jwt.WithTimeFunc(a.clock.Now), jwt.WithExpirationRequired())
	if err != nil {
		return assertErr(700027, "Client assertion failed signature validation or is expired.")
	}
	if !strings.EqualFold(claims.Issuer, sp.AppID) || !strings.EqualFold(claims.Subject, sp.AppID) {
		return assertErr(700023, "The client assertion's iss and sub must both be the client ID.")
	}
	if !a.audienceIsTokenEndpoint(claims.Audience, tenant) {
		return assertErr(700212, "The client assertion's audience must be the token endpoint.")
	}
	if claims.NotBefore != nil && claims.ExpiresAt.Sub(claims.NotBefore.Time) > maxAssertionLifetime {
		return assertErr(700024, "The client assertion's lifetime is too long.")
	}
	if claims.ID != "" && !a.firstUse(sp.AppID+"|"+claims.ID, claims.ExpiresAt.Time.Add(Skew)) {
		return assertErr(7000222, "The client assertion was already used.")
	}
	return nil
}

// audienceIsTokenEndpoint accepts the v2 and v1 token endpoint URLs of
// tenant (and the authority with the tenant, as some clients send).
func (a *Authority) audienceIsTokenEndpoint(aud jwt.ClaimStrings, tenant string) bool {
	want := []string{a.base + tenant + "/oauth2/v2.0/token", a.base + tenant + "/oauth2/token", a.base + tenant}
	for _, got := range aud {
		for _, w := range want {
			if strings.EqualFold(strings.TrimSuffix(got, "/"), w) {
				return true
			}
		}
	}
	return false
}

// firstUse records an assertion ID until its expiry and reports whether it
// was new.
func (a *Authority) firstUse(id string, until time.Time) bool {
	now := a.clock.Now()
	sum := sha256.Sum256([]byte(id))
	k := string(sum[:])
	a.ext.mu.Lock()
	defer a.ext.mu.Unlock()
	if a.ext.jtis == nil {
		a.ext.jtis = map[string]time.Time{}
	}
	if len(a.ext.jtis) > 100_000 {
		for j, exp := range a.ext.jtis {
			if now.After(exp) {
				delete(a.ext.jtis, j)
			}
		}
	}
	if exp, seen := a.ext.jtis[k]; seen && now.Before(exp) {
		return false
	}
	a.ext.jtis[k] = until
	return true
}

// verifyFederatedAssertion checks an external token against sp's
// federated credentials: exact (iss, sub) match, aud equal to the
// credential's audience, signature by the issuer's key, times within skew.
// Tokens issued by this authority are never accepted as assertions.
func (a *Authority) verifyFederatedAssertion(ctx context.Context, sp *ServicePrincipal, tenant, raw string, u *unverified) error {
	iss, sub := u.claims.Issuer, u.claims.Subject
	if iss == "" || sub == "" {
		return assertErr(700211, "The federated token has no iss or sub.")
	}
	if strings.HasPrefix(strings.ToLower(iss), strings.ToLower(a.base)) {
		return assertErr(700222, "Tokens issued by this authority cannot be used as client assertions.")
	}
	var fic *FederatedCredential
	for i := range sp.Federated {
		if sp.Federated[i].Issuer == iss && sp.Federated[i].Subject == sub {
			fic = &sp.Federated[i]
		}
	}
	if fic == nil {
		return assertErr(70021, "No matching federated identity record found for presented assertion. Assertion Issuer and Subject must match a federated credential exactly.")
	}
	audOK := false
	for _, got := range u.claims.Audience {
		if got == fic.Audiences[0] {
			audOK = true
		}
	}
	if !audOK {
		return assertErr(700212, "No matching federated identity record found for presented assertion audience.")
	}
	keys, err := a.externalKeys(ctx, tenant, iss, u.headerString("kid"))
	if err != nil {
		return assertErr(700211, "The keys of the federated token's issuer could not be obtained.")
	}
	key, ok := keys.Find(u.headerString("kid"))
	if !ok {
		return assertErr(700027, "The federated token's signing key is not in its issuer's key set.")
	}
	var claims jwt.RegisteredClaims
	_, err = jwt.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return key, nil },
		jwt.WithValidMethods([]string{"RS256", "RS384", "RS512", "PS256", "ES256", "ES384"}),
		jwt.WithLeeway(Skew), jwt.WithTimeFunc(a.clock.Now), jwt.WithExpirationRequired())
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return assertErr(700024, "The federated token is expired.")
		}
		return assertErr(700027, "The federated token failed signature validation.")
	}
	if claims.Issuer != iss || claims.Subject != sub {
		return assertErr(70021, "No matching federated identity record found for presented assertion.")
	}
	return nil
}
