package shamir

import (
	"crypto/rand"
	"errors"
	"fmt"
)

// ErrInvalidParameters is returned (wrapped) by Split for an empty secret or
// an out-of-range parts/threshold pair.
var ErrInvalidParameters = errors.New("shamir: invalid split parameters")

// ErrInvalidShares is returned (wrapped) by Combine when the shares are
// malformed. It is never returned for shares that are well-formed but wrong;
// see the package documentation.
var ErrInvalidShares = errors.New("shamir: invalid shares")

// MaxParts is the largest number of shares one split can produce: there are
// 255 non-zero x coordinates in GF(2^8).
const MaxParts = 255

// Split divides secret into parts shares, any threshold of which recombine
// to it with Combine. It requires 2 <= threshold <= parts <= 255 and a
// non-empty secret. Each share is len(secret)+1 bytes: the y values followed
// by the x coordinate. secret is not modified.
//
// Any threshold-1 shares reveal nothing about the secret except its length.
func Split(secret []byte, parts, threshold int) ([][]byte, error) {
	switch {
	case len(secret) == 0:
		return nil, fmt.Errorf("%w: empty secret", ErrInvalidParameters)
	case threshold < 2:
		return nil, fmt.Errorf("%w: threshold %d is less than 2", ErrInvalidParameters, threshold)
	case parts < threshold:
		return nil, fmt.Errorf("%w: parts %d is less than threshold %d", ErrInvalidParameters, parts, threshold)
	case parts > MaxParts:
		return nil, fmt.Errorf("%w: parts %d is more than %d", ErrInvalidParameters, parts, MaxParts)
	}

	xs, err := randomXs(parts)
	if err != nil {
		return nil, err
	}
	// Coefficients 1..threshold-1 of every byte's polynomial, uniformly
	// random (zero included: a leading zero coefficient is as likely as any
	// other value, which is what makes threshold-1 shares independent of the
	// secret).
	coeffs := make([]byte, len(secret)*(threshold-1))
	defer clear(coeffs)
	if _, err := rand.Read(coeffs); err != nil {
		return nil, err
	}
	return makeShares(secret, coeffs, xs, threshold), nil
}

// makeShares evaluates, for every byte secret[i], the polynomial
// secret[i] + c[1]·x + … + c[t-1]·x^(t-1), with c[k] = coeffs[i*(t-1)+k-1],
// at every x in xs (Horner's rule) and lays the results out as shares.
func makeShares(secret, coeffs, xs []byte, threshold int) [][]byte {
	deg := threshold - 1
	n := len(secret)
	buf := make([]byte, len(xs)*(n+1)) // one allocation, sliced per share
	shares := make([][]byte, len(xs))
	for j, x := range xs {
		share := buf[j*(n+1) : (j+1)*(n+1) : (j+1)*(n+1)]
		for i, s := range secret {
			c := coeffs[i*deg : (i+1)*deg]
			y := c[deg-1]
			for k := deg - 2; k >= 0; k-- {
				y = gfMul(y, x) ^ c[k]
			}
			share[i] = gfMul(y, x) ^ s
		}
		share[n] = x
		shares[j] = share
	}
	return shares
}

// randomXs returns n distinct non-zero bytes in random order: the first n
// entries of a Fisher–Yates shuffle of 1..255 driven by crypto/rand with
// rejection sampling, so every choice is uniform. The x coordinates are
// public; they are random only so that share positions carry no meaning.
func randomXs(n int) ([]byte, error) {
	var all [MaxParts]byte
	for i := range all {
		all[i] = byte(i + 1)
	}
	var pool [64]byte
	used := len(pool)
	for i := range n {
		span := MaxParts - i    // choose j in [i, 255)
		limit := 256 - 256%span // largest multiple of span that fits a byte
		var j int
		for {
			if used == len(pool) {
				if _, err := rand.Read(pool[:]); err != nil {
					return nil, err
				}
				used = 0
			}
			v := int(pool[used])
			used++
			if v < limit {
				j = i + v%span
				break
			}
		}
		all[i], all[j] = all[j], all[i]
	}
	return append([]byte(nil), all[:n]...), nil
}

// Combine reconstructs a secret from shares produced by Split (or by Vault or
// OpenBao). It needs at least two shares of equal length, at least two bytes
// each, with distinct non-zero x coordinates (the last byte); the order of
// the shares does not matter and they are not modified.
//
// Combine cannot know the threshold: given fewer shares than the threshold,
// or a wrong share, it returns bytes that are not the secret and no error.
// Verify the result, as the package documentation explains.
func Combine(shares [][]byte) ([]byte, error) {
	if len(shares) < 2 {
		return nil, fmt.Errorf("%w: need at least 2 shares, have %d", ErrInvalidShares, len(shares))
	}
	size := len(shares[0])
	if size < 2 {
		return nil, fmt.Errorf("%w: share is %d bytes, need at least 2", ErrInvalidShares, size)
	}
	var seen [256]bool
	xs := make([]byte, len(shares))
	for i, s := range shares {
		if len(s) != size {
			return nil, fmt.Errorf("%w: shares have different lengths", ErrInvalidShares)
		}
		x := s[size-1]
		if x == 0 {
			return nil, fmt.Errorf("%w: share %d has x coordinate 0", ErrInvalidShares, i)
		}
		if seen[x] {
			return nil, fmt.Errorf("%w: duplicate share (x coordinate %d)", ErrInvalidShares, x)
		}
		seen[x] = true
		xs[i] = x
	}

	// Lagrange interpolation at x = 0. In characteristic 2, 0 - xj = xj and
	// xi - xj = xi ^ xj, so the basis polynomial of share i evaluated at 0 is
	//   l_i = Π_{j≠i} xj / (xi ^ xj).
	// It depends only on the public x coordinates, so it is computed once per
	// share rather than once per byte. Neither product can be zero because
	// every xj is non-zero and all are distinct.
	basis := make([]byte, len(shares))
	for i, xi := range xs {
		num, den := byte(1), byte(1)
		for j, xj := range xs {
			if i == j {
				continue
			}
			num = gfMul(num, xj)
			den = gfMul(den, xi^xj)
		}
		basis[i] = gfMul(num, gfInv(den))
	}

	secret := make([]byte, size-1)
	for i, s := range shares {
		l := basis[i]
		for k, y := range s[:size-1] {
			secret[k] ^= gfMul(y, l)
		}
	}
	return secret, nil
}
