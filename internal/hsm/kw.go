package hsm

import (
	"crypto/aes"
	"crypto/subtle"
	"encoding/binary"
	"errors"
)

// errKW is every AES key unwrap failure (integrity or format).
var errKW = errors.New("hsm: AES key unwrap failed")

// kwpUnwrap reverses RFC 5649 AES key wrap with padding. It also accepts
// SoftHSM2 2.6.1's output for lengths not a multiple of 8, whose message
// length indicator counts the zero padding (CRYPTO.md §1.4 pitfall 6), and
// then returns the padded bytes: the caller strips them by parsing what it
// expects (DER).
func kwpUnwrap(kek, c []byte) ([]byte, error) {
	if len(c) < 16 || len(c)%8 != 0 {
		return nil, errKW
	}
	b, err := aes.NewCipher(kek)
	if err != nil {
		return nil, errKW
	}
	n := len(c)/8 - 1
	var a [8]byte
	p := make([]byte, n*8)
	if n == 1 {
		var blk [16]byte
		b.Decrypt(blk[:], c)
		copy(a[:], blk[:8])
		copy(p, blk[8:])
	} else {
		copy(a[:], c[:8])
		copy(p, c[8:])
		var blk [16]byte
		for j := 5; j >= 0; j-- {
			for i := n; i >= 1; i-- {
				t := uint64(n*j + i)
				binary.BigEndian.PutUint64(blk[:8], binary.BigEndian.Uint64(a[:])^t)
				copy(blk[8:], p[(i-1)*8:i*8])
				b.Decrypt(blk[:], blk[:])
				copy(a[:], blk[:8])
				copy(p[(i-1)*8:i*8], blk[8:])
			}
		}
	}
	ok := subtle.ConstantTimeCompare(a[:4], []byte{0xA6, 0x59, 0x59, 0xA6})
	mli := int(binary.BigEndian.Uint32(a[4:]))
	if ok != 1 || mli > len(p) || mli <= len(p)-8 {
		clear(p)
		return nil, errKW
	}
	var nz byte
	for _, x := range p[mli:] {
		nz |= x
	}
	if nz != 0 {
		clear(p)
		return nil, errKW
	}
	return p[:mli], nil
}

// kwpWrap is RFC 5649 AES key wrap with padding (tests and tools that make
// BYOK transfer blobs).
func kwpWrap(kek, p []byte) ([]byte, error) {
	b, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	if len(p) == 0 {
		return nil, errors.New("hsm: nothing to wrap")
	}
	var a [8]byte
	copy(a[:4], []byte{0xA6, 0x59, 0x59, 0xA6})
	binary.BigEndian.PutUint32(a[4:], uint32(len(p)))
	padded := make([]byte, (len(p)+7)/8*8)
	copy(padded, p)
	n := len(padded) / 8
	if n == 1 {
		out := make([]byte, 16)
		copy(out, a[:])
		copy(out[8:], padded)
		b.Encrypt(out, out)
		return out, nil
	}
	r := padded
	var blk [16]byte
	for j := 0; j <= 5; j++ {
		for i := 1; i <= n; i++ {
			copy(blk[:8], a[:])
			copy(blk[8:], r[(i-1)*8:i*8])
			b.Encrypt(blk[:], blk[:])
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(a[:], binary.BigEndian.Uint64(blk[:8])^t)
			copy(r[(i-1)*8:i*8], blk[8:])
		}
	}
	return append(a[:], r...), nil
}

// KWPWrap is RFC 5649 AES key wrap with padding, exported for BYOK tools.
func KWPWrap(kek, p []byte) ([]byte, error) { return kwpWrap(kek, p) }

// KWPUnwrap reverses [KWPWrap]; every failure is the same error.
func KWPUnwrap(kek, c []byte) ([]byte, error) { return kwpUnwrap(kek, c) }
