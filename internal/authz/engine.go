package authz

import (
	"errors"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/keyward/keyward/internal/clock"
)

// Engine is the Authorizer: decisions over the current Index, which its
// owner replaces atomically with Swap whenever a stored record changes. A
// decision takes no lock and does no I/O.
type Engine struct {
	idx   atomic.Pointer[Index]
	clock clock.Clock
}

var (
	_ Authorizer        = (*Engine)(nil)
	_ NetworkAuthorizer = (*Engine)(nil)
)

// NewEngine returns an engine with an empty index: it denies everything
// until the first Swap.
func NewEngine(clk clock.Clock) *Engine {
	e := &Engine{clock: clk}
	empty, _ := Build(Snapshot{})
	e.idx.Store(empty)
	return e
}

// Swap installs idx for every later decision.
func (e *Engine) Swap(idx *Index) { e.idx.Store(idx) }

// Index returns the index decisions currently use.
func (e *Engine) Index() *Index { return e.idx.Load() }

// Now is the engine's clock.
func (e *Engine) Now() time.Time { return e.clock.Now() }

// Authorize decides at the clock's current time.
func (e *Engine) Authorize(p Principal, a Action, s Scope) Decision {
	return e.idx.Load().Decide(p, a, s, e.clock.Now())
}

// Client is where a data-plane request comes from.
type Client struct {
	IP netip.Addr
	// Private is true for requests that arrived on a listener marked
	// private: Keyward's self-hosted private endpoint.
	Private bool
}

// NetworkAuthorizer is the optional capability of an Authorizer to decide
// on network rules (data plane only).
type NetworkAuthorizer interface {
	AuthorizeNetwork(p Principal, s Scope, c Client) Decision
}

// AuthorizeNetwork applies the firewall of the scope's vault.
func (e *Engine) AuthorizeNetwork(p Principal, s Scope, c Client) Decision {
	return e.idx.Load().DecideNetwork(p, s, c)
}

// DecideNetwork is the network decision (AZURE-API.md §6 networkAcls):
// private listeners always pass; with public network access disabled or
// defaultAction Deny, a public client passes only if its address is in an
// IP rule (Deny only) or it is a trusted service and bypass is
// AzureServices.
func (x *Index) DecideNetwork(p Principal, s Scope, c Client) Decision {
	v := x.vaults[strings.ToLower(s.Vault)]
	if v == nil || c.Private {
		return Decision{Allowed: true, Reason: "no network rules apply"}
	}
	n := &v.Network
	trusted := func() bool {
		if strings.EqualFold(n.Bypass, "None") {
			return false
		}
		info := x.principals[pkey(p.TenantID, p.ObjectID)]
		return info != nil && info.rec.Trusted && strings.EqualFold(p.TenantID, s.TenantID)
	}
	deny := func(reason string) Decision {
		return Decision{Reason: reason, Code: CodeFirewall, Missing: "network access from " + c.IP.String()}
	}
	if n.PublicDisabled {
		if trusted() {
			return Decision{Allowed: true, Reason: "trusted service bypass"}
		}
		return deny("public network access is disabled")
	}
	if !strings.EqualFold(n.DefaultAction, "Deny") {
		return Decision{Allowed: true, Reason: "default action Allow"}
	}
	ip := c.IP.Unmap()
	for _, r := range n.IPRules {
		if r.Contains(ip) {
			return Decision{Allowed: true, Reason: "IP rule " + r.String()}
		}
	}
	if trusted() {
		return Decision{Allowed: true, Reason: "trusted service bypass"}
	}
	return deny("client address is not in the vault's IP rules")
}

// ParseIPRule parses an ipRules value: an IPv4 or IPv6 address or CIDR.
func ParseIPRule(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Addr().Is4In6() {
			if p.Bits() < 96 {
				return netip.Prefix{}, errors.New("authz: IPv4-mapped prefix shorter than /96")
			}
			return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96).Masked(), nil
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
