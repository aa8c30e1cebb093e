package hsm

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// RFC 5649 §6 test vectors.
func TestKWPVectors(t *testing.T) {
	kek, _ := hex.DecodeString("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8")
	for _, v := range []struct{ key, wrapped string }{
		{"c37b7e6492584340bed12207808941155068f738", "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a"},
		{"466f7250617369", "afbeb0f07dfbf5419200f2ccb50bb24f"},
	} {
		p, _ := hex.DecodeString(v.key)
		w, err := kwpWrap(kek, p)
		if err != nil || hex.EncodeToString(w) != v.wrapped {
			t.Fatalf("wrap %s = %x %v", v.key, w, err)
		}
		u, err := kwpUnwrap(kek, w)
		if err != nil || !bytes.Equal(u, p) {
			t.Fatalf("unwrap %x = %x %v", w, u, err)
		}
		w[3] ^= 1
		if _, err := kwpUnwrap(kek, w); err == nil {
			t.Fatal("tampered blob unwrapped")
		}
	}
}

func FuzzKWPUnwrap(f *testing.F) {
	kek := bytes.Repeat([]byte{7}, 32)
	w, _ := kwpWrap(kek, []byte("a secret of 21 bytes!"))
	f.Add(w)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, c []byte) {
		p, err := kwpUnwrap(kek, c)
		if err != nil {
			return
		}
		// Whatever unwraps must wrap back to the same blob (the wrap is
		// deterministic and the MLI and padding were checked).
		w, err := kwpWrap(kek, p)
		if err != nil || !bytes.Equal(w, c) {
			t.Fatalf("unwrap(%x) = %x, which wraps to %x", c, p, w)
		}
	})
}
