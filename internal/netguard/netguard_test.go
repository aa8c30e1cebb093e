package netguard

import (
	"context"
	"errors"
	"net/netip"
	"testing"
)

func TestPublic(t *testing.T) {
	for _, s := range []string{"127.0.0.1", "10.0.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254", "100.64.0.1",
		"0.0.0.0", "255.255.255.255", "224.0.0.1", "::1", "::", "fe80::1", "fd12::1", "ff02::1", "::ffff:10.0.0.1",
		"64:ff9b::7f00:1", "2002:7f00:1::1", "198.18.0.1", "2001:db8::1"} {
		if Public(netip.MustParseAddr(s)) {
			t.Errorf("%s counted as public", s)
		}
	}
	for _, s := range []string{"20.60.0.1", "8.8.8.8", "172.32.0.1", "2603:1030::1", "::ffff:20.60.0.1"} {
		if !Public(netip.MustParseAddr(s)) {
			t.Errorf("%s counted as not public", s)
		}
	}
}

func TestNewRefusesBadEntries(t *testing.T) {
	for _, e := range []string{"http://x.example", "x.example/path", "*", "*.", "a..b", "bad host", "10.0.0.0/33"} {
		if _, err := New([]string{e}, false); err == nil {
			t.Errorf("entry %q accepted", e)
		}
	}
	p, err := New([]string{"X.Example.", " [::1] ", "*.Blob.Example", "10.0.0.0/8"}, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"x.example", "X.EXAMPLE.", "::1", "a.blob.example", "10.2.3.4"} {
		if err := p.AllowHost(h); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
	for _, h := range []string{"blob.example", "y.example", "11.0.0.1", "::2"} {
		if err := p.AllowHost(h); !errors.Is(err, ErrRefused) {
			t.Errorf("%s allowed", h)
		}
	}
}

// TestControlChecksTheDialledAddress: the dial-time rule sees the address
// the connection goes to, whatever name was asked for.
func TestControlChecksTheDialledAddress(t *testing.T) {
	p, _ := New(nil, false)
	ctx := context.WithValue(context.Background(), hostKey{}, "acct.blob.example")
	for _, a := range []string{"127.0.0.1:443", "[::1]:443", "10.0.0.1:443", "169.254.169.254:80", "[fe80::1%eth0]:443", "0.0.0.0:443"} {
		if err := p.control(ctx, "tcp", a, nil); err == nil {
			t.Errorf("%s accepted", a)
		}
	}
	if err := p.control(ctx, "tcp", "20.60.0.1:443", nil); err != nil {
		t.Errorf("public address refused: %v", err)
	}
	dev, _ := New(nil, true)
	if err := dev.control(ctx, "tcp", "127.0.0.1:10000", nil); err != nil {
		t.Errorf("dev: loopback refused: %v", err)
	}
	if err := dev.control(ctx, "tcp", "10.0.0.1:443", nil); err == nil {
		t.Error("dev: a private address accepted")
	}
}
