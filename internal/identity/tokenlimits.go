package identity

import (
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/throttle"
)

// TokenLimits protect the token endpoint from unauthenticated load and from
// online guessing of client credentials (docs/CONFIG.md, [token_endpoint];
// docs/SECURITY.md). Client secrets are 256-bit, so guessing is not the
// risk; the limits bound the work and the audit volume a caller without
// credentials can cause.
//
//   - Source: every token request from one source address (IPv6: its /64),
//     at the token and the managed-identity endpoints, takes a token from
//     that source's bucket, before anything is parsed.
//   - Client: every token issued to one client (tenant, client ID) takes a
//     token from the client's bucket. Only requests that authenticated are
//     counted, so a caller without the credentials cannot spend a
//     legitimate client's budget.
//   - Lockout: LockoutFailures failed client authentications (wrong secret
//     or assertion, unknown client) from one source for one client within
//     LockoutWindow refuse that client from that source, even with the
//     right credentials, for LockoutDuration. The count is kept per client
//     and source, so an attacker cannot lock a client out of the sources it
//     legitimately uses; unknown client IDs are counted like known ones, so
//     the lockout does not tell which exist.
//
// Refusals are 429 with Retry-After, which is how Entra signals throttling
// on client_credentials and what MSAL and azidentity honour.
//
// Where the state lives: a registered client's failures are stored with
// the client (ServicePrincipal.TokenFailures, at most maxStoredSources
// sources), so its lockout holds on every node of a cluster; each failure
// costs one storage write, and a locked source costs none. Failures for
// client IDs that do not exist, and the rate buckets, live in each node's
// memory: in a cluster each node enforces the rates on its own (N nodes
// admit up to N times a rate).
type TokenLimits struct {
	Source throttle.Limit // per source address; Rate 0: off
	Client throttle.Limit // tokens issued per client; Rate 0: off

	LockoutFailures int           // 0: no lockout
	LockoutWindow   time.Duration // failures are counted within this window
	LockoutDuration time.Duration // how long a client stays locked for a source
}

// DefaultTokenLimits are generous enough that no correctly caching client
// meets them (a client asks for a token about once an hour per resource).
var DefaultTokenLimits = TokenLimits{
	Source:          throttle.Limit{Rate: 100},
	Client:          throttle.Limit{Rate: 50},
	LockoutFailures: 10,
	LockoutWindow:   5 * time.Minute,
	LockoutDuration: 5 * time.Minute,
}

// maxStoredSources bounds the sources a client's record keeps failures
// for. When full, entries whose window and lock have passed go first, then
// the unlocked entry that started first, then the lock that ends first.
const maxStoredSources = 32

// SourceFailures are the recent failed authentications of one client from
// one source.
type SourceFailures struct {
	Count       int       `json:"count"`
	First       time.Time `json:"first"`
	LockedUntil time.Time `json:"lockedUntil,omitzero"`
}

func (f *SourceFailures) expired(now time.Time, window time.Duration) bool {
	if !f.LockedUntil.IsZero() {
		return !now.Before(f.LockedUntil)
	}
	return now.Sub(f.First) > window
}

// storedLockedFor returns how long sp stays locked for source; 0: not.
func (g *tokenGuard) storedLockedFor(sp *ServicePrincipal, source string) time.Duration {
	if g.cfg.LockoutFailures <= 0 || sp == nil {
		return 0
	}
	f := sp.TokenFailures[sourceKey(source)]
	if now := g.clk.Now(); f != nil && now.Before(f.LockedUntil) {
		return f.LockedUntil.Sub(now)
	}
	return 0
}

// storeFailure adds a failure from source to sp's record (inside
// Directory.UpdateServicePrincipal's transaction).
func (g *tokenGuard) storeFailure(sp *ServicePrincipal, source string) {
	now, k := g.clk.Now(), sourceKey(source)
	f := sp.TokenFailures[k]
	if f == nil || f.expired(now, g.cfg.LockoutWindow) {
		if sp.TokenFailures == nil {
			sp.TokenFailures = map[string]*SourceFailures{}
		}
		for len(sp.TokenFailures) >= maxStoredSources {
			evictStored(sp.TokenFailures, now, g.cfg.LockoutWindow)
		}
		f = &SourceFailures{First: now}
		sp.TokenFailures[k] = f
	}
	f.Count++
	if f.Count >= g.cfg.LockoutFailures && f.LockedUntil.IsZero() {
		f.LockedUntil = now.Add(g.cfg.LockoutDuration)
	}
}

func evictStored(m map[string]*SourceFailures, now time.Time, window time.Duration) {
	var victim string
	for k, f := range m {
		if f.expired(now, window) {
			delete(m, k)
			continue
		}
		if v := m[victim]; victim == "" || v == nil || better(f, v) {
			victim = k
		}
	}
	if len(m) >= maxStoredSources {
		delete(m, victim)
	}
}

// better reports whether a is a better eviction victim than b: unlocked
// before locked, then the older start or the earlier end of the lock.
func better(a, b *SourceFailures) bool {
	al, bl := !a.LockedUntil.IsZero(), !b.LockedUntil.IsZero()
	switch {
	case al != bl:
		return !al
	case al:
		return a.LockedUntil.Before(b.LockedUntil)
	}
	return a.First.Before(b.First)
}

// maxTrackedFailures bounds the failure table. When full, entries whose
// window and lock have passed go first, then everything: only an attacker
// with that many (client, source) pairs can reset counts, and only its own.
const maxTrackedFailures = 100_000

type tokenGuard struct {
	clk     clock.Clock
	cfg     TokenLimits
	sources *throttle.Limiter
	clients *throttle.Limiter

	mu       sync.Mutex
	failures map[string]*clientFailures // tenant|client|source
}

type clientFailures struct {
	count  int
	first  time.Time
	locked time.Time // locked until; zero: not locked
}

func newTokenGuard(clk clock.Clock, cfg TokenLimits) *tokenGuard {
	return &tokenGuard{clk: clk, cfg: cfg,
		sources:  throttle.New(clk, throttle.Config{Vault: cfg.Source}),
		clients:  throttle.New(clk, throttle.Config{Principal: cfg.Client}),
		failures: map[string]*clientFailures{}}
}

// SetTokenLimits replaces the token endpoint's limits (and forgets their
// state). NewAuthority starts with DefaultTokenLimits.
func (a *Authority) SetTokenLimits(l TokenLimits) {
	a.guard.Store(newTokenGuard(a.clock, l))
}

// sourceKey is the unit a source is limited by: an IPv4 address, or the
// /64 of an IPv6 address (one host usually holds a whole /64).
func sourceKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// allowSource takes a token from the source's bucket, or returns how long
// to wait.
func (g *tokenGuard) allowSource(source string) (time.Duration, bool) {
	d := g.sources.Allow(sourceKey(source), "", "")
	return d.RetryAfter, d.Allowed
}

// allowClient takes a token from the client's bucket (after it
// authenticated), or returns how long to wait.
func (g *tokenGuard) allowClient(tenant, clientID string) (time.Duration, bool) {
	d := g.clients.Allow("", strings.ToLower(tenant), strings.ToLower(clientID))
	return d.RetryAfter, d.Allowed
}

func failureKey(tenant, clientID, source string) string {
	return strings.ToLower(tenant) + "|" + strings.ToLower(clientID) + "|" + sourceKey(source)
}

// lockedFor returns how long clientID stays locked for source; 0: not
// locked.
func (g *tokenGuard) lockedFor(tenant, clientID, source string) time.Duration {
	if g.cfg.LockoutFailures <= 0 {
		return 0
	}
	now := g.clk.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	f := g.failures[failureKey(tenant, clientID, source)]
	if f == nil || !now.Before(f.locked) {
		return 0
	}
	return f.locked.Sub(now)
}

// failed counts a failed authentication of clientID from source; the
// failure that reaches LockoutFailures starts the lock.
func (g *tokenGuard) failed(tenant, clientID, source string) {
	if g.cfg.LockoutFailures <= 0 {
		return
	}
	now := g.clk.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	k := failureKey(tenant, clientID, source)
	f := g.failures[k]
	if f == nil || f.expired(now, g.cfg.LockoutWindow) {
		if f == nil && len(g.failures) >= maxTrackedFailures {
			g.sweep(now)
		}
		f = &clientFailures{first: now}
		g.failures[k] = f
	}
	f.count++
	if f.count >= g.cfg.LockoutFailures && f.locked.IsZero() {
		f.locked = now.Add(g.cfg.LockoutDuration)
	}
}

// expired reports whether f no longer counts: its lock has ended, or it
// never locked and its window has passed.
func (f *clientFailures) expired(now time.Time, window time.Duration) bool {
	if !f.locked.IsZero() {
		return !now.Before(f.locked)
	}
	return now.Sub(f.first) > window
}

// succeeded forgets the failures of clientID from source.
func (g *tokenGuard) succeeded(tenant, clientID, source string) {
	if g.cfg.LockoutFailures <= 0 {
		return
	}
	g.mu.Lock()
	delete(g.failures, failureKey(tenant, clientID, source))
	g.mu.Unlock()
}

func (g *tokenGuard) sweep(now time.Time) {
	for k, f := range g.failures {
		if f.expired(now, g.cfg.LockoutWindow) {
			delete(g.failures, k)
		}
	}
	if len(g.failures) >= maxTrackedFailures {
		clear(g.failures)
	}
}
