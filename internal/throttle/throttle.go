package throttle

import (
	"sync"
	"time"

	"github.com/keyward/keyward/internal/clock"
)

// Limit is one bucket's size and refill rate.
type Limit struct {
	// Rate is the sustained number of requests per second; 0 means no limit.
	Rate float64
	// Burst is the bucket's size: how many requests may arrive at once
	// after a quiet period. 0 means 10 × Rate (Azure's 10-second window).
	Burst float64
}

func (l Limit) burst() float64 {
	if l.Burst > 0 {
		return l.Burst
	}
	return 10 * l.Rate
}

// Config is the limits of a Limiter. The zero value limits nothing.
type Config struct {
	Vault     Limit // per vault, whoever calls
	Principal Limit // per calling principal, across vaults
}

// Scope names the bucket that refused a request.
type Scope string

const (
	VaultScope     Scope = "vault"
	PrincipalScope Scope = "principal"
)

// Decision is the outcome of Allow.
type Decision struct {
	Allowed bool
	// RetryAfter is, when refused, how long until a token is available in
	// every bucket the request needs.
	RetryAfter time.Duration
	// Scope is the bucket that refused (the vault's when both did).
	Scope Scope
}

// maxIdleBuckets is how many buckets may exist before full ones are swept.
const maxIdleBuckets = 10_000

// Limiter is safe for concurrent use.
type Limiter struct {
	clock clock.Clock
	cfg   Config

	mu      sync.Mutex
	buckets map[key]*bucket
	sweepAt int // sweep full buckets when len(buckets) reaches this
}

type key struct {
	scope   Scope
	id, id2 string
}

type bucket struct {
	tokens float64
	last   time.Time
}

// New returns a Limiter with cfg's limits, reading time from clk.
func New(clk clock.Clock, cfg Config) *Limiter {
	return &Limiter{clock: clk, cfg: cfg, buckets: map[key]*bucket{}, sweepAt: maxIdleBuckets}
}

// Config returns the limits.
func (l *Limiter) Config() Config { return l.cfg }

// Allow takes one token from the bucket of vault and the bucket of the
// principal (tenant, objectID), or from neither when either is empty.
func (l *Limiter) Allow(vault, tenant, objectID string) Decision {
	v, p := l.cfg.Vault, l.cfg.Principal
	if v.Rate <= 0 && p.Rate <= 0 {
		return Decision{Allowed: true}
	}
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var vb, pb *bucket
	if v.Rate > 0 {
		vb = l.refill(key{VaultScope, vault, ""}, v, now)
	}
	if p.Rate > 0 {
		pb = l.refill(key{PrincipalScope, tenant, objectID}, p, now)
	}
	var d Decision
	if pb != nil && pb.tokens < 1 {
		d = Decision{RetryAfter: wait(pb, p), Scope: PrincipalScope}
	}
	if vb != nil && vb.tokens < 1 {
		d = Decision{RetryAfter: max(d.RetryAfter, wait(vb, v)), Scope: VaultScope}
	}
	if d.Scope != "" {
		return d
	}
	if vb != nil {
		vb.tokens--
	}
	if pb != nil {
		pb.tokens--
	}
	return Decision{Allowed: true}
}

// refill returns k's bucket with the tokens earned since it was last used.
func (l *Limiter) refill(k key, lim Limit, now time.Time) *bucket {
	b := l.buckets[k]
	if b == nil {
		if len(l.buckets) >= l.sweepAt {
			l.sweep(now)
		}
		b = &bucket{tokens: lim.burst(), last: now}
		l.buckets[k] = b
		return b
	}
	if dt := now.Sub(b.last); dt > 0 {
		b.tokens = min(lim.burst(), b.tokens+dt.Seconds()*lim.Rate)
		b.last = now
	}
	return b
}

// sweep forgets buckets that have refilled completely: a new bucket starts
// full, so forgetting them changes no decision.
func (l *Limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		lim := l.cfg.Vault
		if k.scope == PrincipalScope {
			lim = l.cfg.Principal
		}
		if b.tokens+now.Sub(b.last).Seconds()*lim.Rate >= lim.burst() {
			delete(l.buckets, k)
		}
	}
	l.sweepAt = max(maxIdleBuckets, 2*len(l.buckets))
}

// wait is how long until b holds one token.
func wait(b *bucket, lim Limit) time.Duration {
	return time.Duration((1 - b.tokens) / lim.Rate * float64(time.Second))
}
