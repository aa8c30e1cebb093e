// Package netguard decides where the server may connect on a user's
// behalf: the blob container a managed HSM backup or restore names is a
// URL the caller chose, and without a guard it would let any caller make
// the server send requests to its own loopback, to the private network
// behind it or to a cloud metadata endpoint (server-side request forgery).
//
// A Policy holds an allow-list of hosts (`[backup] allowed_hosts`) and
// refuses loopback, private, link-local and other special-purpose
// addresses unless the list names them. The address rule is enforced when
// the connection is made, on the address actually dialled (a net.Dialer
// Control function), so a name that resolves to a public address when the
// request is checked and to a private one when the connection is made
// (DNS rebinding) is still refused. Check runs the same rules ahead of
// time, so a request naming a refused destination is answered at once
// and starts nothing.
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Policy is an allow-list of hosts and the rule for non-public addresses.
// The zero Policy is not usable; build one with New.
type Policy struct {
	restrict bool            // the list is not empty: only its hosts
	names    map[string]bool // exact host names
	suffixes []string        // ".example.com" for "*.example.com"
	prefixes []netip.Prefix  // addresses and CIDRs
	loopback bool            // loopback addresses are allowed (dev mode)
	key      string          // the setting named in refusals

	// lookup resolves a name for Check (tests replace it).
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)

	proxies sync.Map // "host:port" of proxies the transport chose
}

// New builds a policy from allowed (host names, "*.suffix" wildcards, IP
// addresses and CIDRs). An empty list allows any host name; a non-empty
// one allows only the hosts it names. Either way the connection's address
// must be public unless an address or CIDR entry covers it, the URL's host
// is an exact name entry (the operator vouches for that name, whatever it
// resolves to), or it is loopback and allowLoopback is set.
func New(allowed []string, allowLoopback bool) (*Policy, error) {
	p := &Policy{names: map[string]bool{}, loopback: allowLoopback, lookup: systemLookup, key: "[backup] allowed_hosts"}
	for _, raw := range allowed {
		e := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(raw)), ".")
		e = strings.TrimSuffix(strings.TrimPrefix(e, "["), "]")
		if e == "" {
			continue
		}
		p.restrict = true
		if pr, err := netip.ParsePrefix(e); err == nil {
			p.prefixes = append(p.prefixes, pr.Masked())
			continue
		}
		if a, err := netip.ParseAddr(e); err == nil {
			a = a.Unmap()
			p.prefixes = append(p.prefixes, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		if s, ok := strings.CutPrefix(e, "*."); ok && validName(s) {
			p.suffixes = append(p.suffixes, "."+s)
			continue
		}
		if !validName(e) {
			return nil, fmt.Errorf("allowed_hosts: %q is not a host name, *.suffix, IP address or CIDR", raw)
		}
		p.names[e] = true
	}
	return p, nil
}

// Named sets the setting refusals name (default "[backup] allowed_hosts")
// and returns p.
func (p *Policy) Named(key string) *Policy {
	p.key = key
	return p
}

// SetLookup replaces the resolver Check uses (tests: a name that resolves
// one way when checked and another when dialled, without a DNS server).
func (p *Policy) SetLookup(f func(ctx context.Context, host string) ([]netip.Addr, error)) {
	p.lookup = f
}

func validName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

func systemLookup(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

func canonical(host string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")), ".")
}

// ErrRefused is wrapped by every refusal.
var ErrRefused = errors.New("destination refused")

// refused is a refusal: its message is detail alone (it is shown to the
// caller), and it matches ErrRefused.
type refused struct{ detail string }

func (r *refused) Error() string        { return r.detail }
func (r *refused) Is(target error) bool { return target == ErrRefused }

func refuse(f string, a ...any) error { return &refused{fmt.Sprintf(f, a...)} }

// AllowHost reports whether host (a URL's host name or IP, no port) is on
// the list.
func (p *Policy) AllowHost(host string) error {
	h := canonical(host)
	if !p.restrict {
		return nil
	}
	if a, err := netip.ParseAddr(h); err == nil {
		if p.covered(a.Unmap().WithZone("")) {
			return nil
		}
		return refuse("host %s is not in %s", h, p.key)
	}
	if p.names[h] {
		return nil
	}
	for _, s := range p.suffixes {
		if strings.HasSuffix(h, s) {
			return nil
		}
	}
	return refuse("host %s is not in %s", h, p.key)
}

func (p *Policy) covered(a netip.Addr) bool {
	for _, pr := range p.prefixes {
		if pr.Contains(a) {
			return true
		}
	}
	return false
}

// AllowAddr reports whether a connection for host may go to a.
func (p *Policy) AllowAddr(host string, a netip.Addr) error {
	a = a.Unmap().WithZone("") // a zoned address never matches a prefix
	switch {
	case !a.IsValid():
		return refuse("no address")
	case p.covered(a):
		return nil
	case p.loopback && a.IsLoopback():
		return nil
	case a.IsUnspecified() || a.IsMulticast():
		return refuse("address %s is not a host address", a)
	case p.names[canonical(host)]:
		return nil
	case !Public(a):
		return refuse("address %s is not public and not in %s", a, p.key)
	}
	return nil
}

// special are the ranges that are not on the public internet (IANA
// special-purpose registries), plus the IPv6 ranges that embed an IPv4
// address a gateway would reach (NAT64, 6to4, IPv4-compatible).
var special = func() []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
		"192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
		"198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
		"::/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32", "2002::/16",
		"fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
	} {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}()

// Public reports whether a is an address on the public internet.
func Public(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	if !a.IsValid() {
		return false
	}
	for _, pr := range special {
		if pr.Contains(a) {
			return false
		}
	}
	return true
}

// Check applies the policy to host ahead of the connection: the list, and
// the address rule to every address host resolves to now. A name that
// does not resolve passes (the connection will fail, or be checked when
// it is made).
func (p *Policy) Check(ctx context.Context, host string) error {
	if err := p.AllowHost(host); err != nil {
		return err
	}
	h := canonical(host)
	if a, err := netip.ParseAddr(h); err == nil {
		return p.AllowAddr(h, a)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	addrs, err := p.lookup(ctx, h)
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if err := p.AllowAddr(h, a); err != nil {
			return refuse("%s resolves to %s", h, err)
		}
	}
	return nil
}

type hostKey struct{}

// DialContext connects to addr ("host:port") if the list allows host and
// the policy allows the address the connection is made to. Proxies the
// transport chose through Proxy are dialled as they are (the operator
// configured them; the target was checked in Proxy).
func (p *Policy) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	if _, ok := p.proxies.Load(addr); ok {
		return d.DialContext(ctx, network, addr)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if err := p.AllowHost(host); err != nil {
		return nil, err
	}
	d.ControlContext = p.control
	return d.DialContext(context.WithValue(ctx, hostKey{}, host), network, addr)
}

// control runs on every address the dialer tries, after resolution.
func (p *Policy) control(ctx context.Context, _, address string, _ syscall.RawConn) error {
	host, _ := ctx.Value(hostKey{}).(string)
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return refuse("address %s cannot be checked", address)
	}
	return p.AllowAddr(host, ap.Addr())
}

// Proxy is http.ProxyFromEnvironment, checking the target ahead of time
// when a proxy carries the request (the proxy resolves the name, so the
// check at connection time cannot see the target's address).
func (p *Policy) Proxy(req *http.Request) (*url.URL, error) {
	u, err := http.ProxyFromEnvironment(req)
	if err != nil || u == nil {
		return u, err
	}
	if err := p.Check(req.Context(), req.URL.Hostname()); err != nil {
		return nil, err
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "socks5": "1080"}[u.Scheme]
		if port == "" {
			port = "80"
		}
	}
	p.proxies.Store(net.JoinHostPort(u.Hostname(), port), true)
	return u, nil
}
