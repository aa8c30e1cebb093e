package shamir

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"go/parser"
	"go/token"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestGFMulKnownProducts(t *testing.T) {
	for _, tc := range []struct{ a, b, want byte }{
		{0x57, 0x83, 0xc1}, // FIPS 197 §4.2
		{0x57, 0x13, 0xfe}, // FIPS 197 §4.2.1
		{0x57, 0x02, 0xae}, // FIPS 197 §4.2.1, xtime
		{0x03, 0x07, 0x09}, // Vault shamir_test.go TestField_Mult
		{0x03, 0x03, 0x05}, // (x+1)^2 = x^2+1
		{0x80, 0x02, 0x1b}, // x^8 = x^4+x^3+x+1
		{0x00, 0xff, 0x00},
		{0x01, 0xa5, 0xa5},
	} {
		if got := gfMul(tc.a, tc.b); got != tc.want {
			t.Errorf("gfMul(%#02x, %#02x) = %#02x, want %#02x", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestGFMulMatchesTable(t *testing.T) {
	// The reference tables must themselves describe the field: 0x03
	// generates all 255 non-zero elements.
	seen := map[byte]bool{}
	for i := range 255 {
		seen[refExp[i]] = true
	}
	if len(seen) != 255 || seen[0] {
		t.Fatalf("reference exp table has %d distinct non-zero values, want 255", len(seen))
	}
	for a := range 256 {
		for b := range 256 {
			if got, want := gfMul(byte(a), byte(b)), refMul(byte(a), byte(b)); got != want {
				t.Fatalf("gfMul(%#02x, %#02x) = %#02x, reference %#02x", a, b, got, want)
			}
		}
	}
}

func TestGFInv(t *testing.T) {
	if got := gfInv(0); got != 0 {
		t.Errorf("gfInv(0) = %#02x, want 0", got)
	}
	for a := 1; a < 256; a++ {
		inv := gfInv(byte(a))
		if p := gfMul(byte(a), inv); p != 1 {
			t.Errorf("%#02x · gfInv(%#02x) = %#02x, want 1", a, a, p)
		}
		if want := refDiv(1, byte(a)); inv != want {
			t.Errorf("gfInv(%#02x) = %#02x, reference %#02x", a, inv, want)
		}
	}
}

// TestMakeSharesByHand: secret 0x42, threshold 2, c1 = 0x03, so
// y(x) = 0x42 ^ 0x03·x: y(1) = 0x41, y(2) = 0x42^0x06 = 0x44,
// y(3) = 0x42^0x05 = 0x47 (0x03·0x03 = (x+1)^2 = x^2+1).
func TestMakeSharesByHand(t *testing.T) {
	got := makeShares([]byte{0x42}, []byte{0x03}, []byte{1, 2, 3}, 2)
	want := [][]byte{{0x41, 1}, {0x44, 2}, {0x47, 3}}
	if !slices.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("makeShares = %x, want %x", got, want)
	}
	for _, pair := range [][2]int{{0, 1}, {0, 2}, {1, 2}} {
		s, err := Combine([][]byte{want[pair[0]], want[pair[1]]})
		if err != nil || !bytes.Equal(s, []byte{0x42}) {
			t.Errorf("Combine(shares %v) = %x, %v; want 42", pair, s, err)
		}
	}
}

// TestKnownAnswer pins the evaluation of fixed polynomials. The expected
// shares were computed with the table-based reference in ref_test.go; the
// first byte of the x=1 share is checkable by hand: at x=1 every power is 1,
// so y = 'k' ^ c1 ^ c2 = 0x6b ^ 0x0b ^ 0x30 = 0x50.
func TestKnownAnswer(t *testing.T) {
	secret := []byte("keyward")
	xs := []byte{0x01, 0x7f, 0xfe, 0x80, 0x33}
	coeffs := make([]byte, len(secret)*2) // threshold 3: c1, c2 per byte
	for i := range coeffs {
		coeffs[i] = byte(i*37 + 11)
	}
	want := []string{
		"504a22900aad4f01",
		"e770db967feae47f",
		"8eddff2cb40d33fe",
		"39e7062ac14a9880",
		"1e96ffeb505e7733",
	}
	got := makeShares(secret, coeffs, xs, 3)
	for j, x := range xs {
		if h := hex.EncodeToString(got[j]); h != want[j] {
			t.Errorf("share %d = %s, want %s", j, h, want[j])
		}
		for i, s := range secret { // cross-check with the reference evaluator
			if y := refEval([]byte{s, coeffs[2*i], coeffs[2*i+1]}, x); got[j][i] != y {
				t.Errorf("share %d byte %d = %#02x, reference %#02x", j, i, got[j][i], y)
			}
		}
	}
	forSubsets(len(xs), 3, func(idx []int) {
		if s, err := Combine(pick(got, idx)); err != nil || !bytes.Equal(s, secret) {
			t.Errorf("Combine(%v) = %q, %v; want %q", idx, s, err, secret)
		}
	})
}

// Shares made by HashiCorp Vault's shamir package (github.com/hashicorp/vault
// /shamir), copied from the README of a public command-line wrapper around it
// found in the code index (repository name not recorded there). They prove
// the share layout and field match Vault's: a different polynomial, byte
// order or x position would not reproduce the plaintext.
var vaultVectors = []struct {
	secret    string
	threshold int
	shares    []string
}{
	{"I've never been to Spain.\n", 5, []string{
		"jZYqqJaCxt4kZjh/xCAakXIG0XKdnlxY89/S",
		"1yubXvs8GdSqO8GPX9Xwk4fV22MJ/4F8wxh9",
		"fuVQmRhkVeKQGzpPVT0eNwvLXHxrQmQjFLGH",
		"Yggxmz2bmtTNPAX9ctHffwqsw4Ds8GZHDpa1",
		"Nyns0pAKCfeqLCrzxV+TpoJCvDJKTqJmR2kG",
		"a//rC1IRcRow60BY5SQV+6bZXLFbUxt221zy",
		"uB34M0pUB5vljgIfdItDHetEfKqxDQea6A93",
		"OUQe8CwZBHTbwt0Za/IRLUlLfB39smrEIEpt",
	}},
	{"Three can keep a secret if two are dead.\n", 2, []string{
		"upOiLkD7A/va03FStBD+NV9feBlKooE8imH7JJ/CXbbV3pQ3EHxZCQ3z",
		"dfJ2ID7zuNNQY+Zqkqvhu2QCBzVLJyuxg4nzT0rSmYrrbR5RBQNPiOVD",
		"+p/3gvuk9sNTjR7UIOVJHi13ZoPvIm/jcBCkJm98tpKgdB1tqWIUK3yt",
	}},
}

func TestVaultVectors(t *testing.T) {
	for _, v := range vaultVectors {
		var shares [][]byte
		for _, s := range v.shares {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				t.Fatal(err)
			}
			shares = append(shares, b)
		}
		for k := v.threshold; k <= len(shares); k++ {
			forSubsets(len(shares), k, func(idx []int) {
				got, err := Combine(pick(shares, idx))
				if err != nil || string(got) != v.secret {
					t.Errorf("Combine(%v) = %q, %v; want %q", idx, got, err, v.secret)
				}
			})
		}
		forSubsets(len(shares), v.threshold-1, func(idx []int) {
			if len(idx) < 2 {
				return
			}
			if got, _ := Combine(pick(shares, idx)); string(got) == v.secret {
				t.Errorf("Combine(%v) with fewer than %d shares gave the secret", idx, v.threshold)
			}
		})
	}
}

// TestSplitCombineAllSubsets: for every secret length 1..64, a 5-part split
// with threshold 3 combines to the secret from every subset of 3, 4 or 5
// shares, in any order.
func TestSplitCombineAllSubsets(t *testing.T) {
	rng := newRand(t)
	for n := 1; n <= 64; n++ {
		secret := randBytes(rng, n)
		shares, err := Split(secret, 5, 3)
		if err != nil {
			t.Fatal(err)
		}
		for k := 3; k <= 5; k++ {
			forSubsets(5, k, func(idx []int) {
				rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
				got, err := Combine(pick(shares, idx))
				if err != nil || !bytes.Equal(got, secret) {
					t.Fatalf("len %d, shares %v: Combine = %x, %v; want %x", n, idx, got, err, secret)
				}
			})
		}
		if n >= 8 { // a 2-share result equals the secret with probability 2^-8n
			forSubsets(5, 2, func(idx []int) {
				if got, _ := Combine(pick(shares, idx)); bytes.Equal(got, secret) {
					t.Errorf("len %d: 2 of a 3-threshold split (%v) gave the secret", n, idx)
				}
			})
		}
	}
}

// TestSplitCombineRandomParameters runs 1000 random (parts, threshold,
// length) trials: a random threshold-sized subset in random order recovers
// the secret and agrees with the reference interpolation; threshold-1
// shares do not.
func TestSplitCombineRandomParameters(t *testing.T) {
	rng := newRand(t)
	trials := 1000
	if testing.Short() {
		trials = 100
	}
	for range trials {
		parts := 2 + rng.IntN(MaxParts-1)
		threshold := 2 + rng.IntN(parts-1)
		secret := randBytes(rng, 1+rng.IntN(32))
		shares, err := Split(secret, parts, threshold)
		if err != nil {
			t.Fatalf("Split(len %d, %d, %d): %v", len(secret), parts, threshold, err)
		}
		checkShape(t, shares, len(secret), parts)
		idx := rng.Perm(parts)[:threshold]
		sub := pick(shares, idx)
		got, err := Combine(sub)
		if err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("%d-of-%d, len %d: Combine = %x, %v; want %x", threshold, parts, len(secret), got, err, secret)
		}
		if threshold <= 32 { // the reference is quadratic per byte and slow
			if ref := refCombine(sub); !bytes.Equal(got, ref) {
				t.Fatalf("Combine = %x, reference %x", got, ref)
			}
		}
		if threshold > 2 && len(secret) >= 8 {
			if got, _ := Combine(sub[1:]); bytes.Equal(got, secret) {
				t.Fatalf("%d-of-%d: %d shares gave the secret", threshold, parts, threshold-1)
			}
		}
	}
}

// TestBelowThresholdIsUniform: for a fixed one-byte secret, what two shares
// of a 3-threshold split interpolate to is uniformly distributed, so it says
// nothing about the secret. With 200 samples per value, the chi-square
// statistic over 256 bins (255 degrees of freedom: mean 255, sd ≈ 22.6) stays
// far below 450 unless the output is biased; the secret's own bin must not
// stand out either.
func TestBelowThresholdIsUniform(t *testing.T) {
	const secret, perBin = 0x42, 200
	var counts [256]int
	for range 256 * perBin {
		shares, err := Split([]byte{secret}, 5, 3)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Combine(shares[1:3])
		if err != nil {
			t.Fatal(err)
		}
		counts[got[0]]++
	}
	var chi2 float64
	for _, c := range counts {
		d := float64(c - perBin)
		chi2 += d * d / perBin
	}
	if chi2 > 450 {
		t.Errorf("chi-square = %.1f over 255 degrees of freedom: below-threshold output is not uniform", chi2)
	}
	if counts[secret] > 2*perBin {
		t.Errorf("the secret came out %d times in %d trials (expected about %d)", counts[secret], 256*perBin, perBin)
	}
}

func TestSplitShape(t *testing.T) {
	secret := []byte("do not touch")
	orig := bytes.Clone(secret)
	xsSeen := map[byte]bool{}
	for range 100 {
		shares, err := Split(secret, 2, 2)
		if err != nil {
			t.Fatal(err)
		}
		checkShape(t, shares, len(secret), 2)
		for _, s := range shares {
			xsSeen[s[len(s)-1]] = true
		}
	}
	if !bytes.Equal(secret, orig) {
		t.Fatalf("Split modified the secret")
	}
	// 200 uniform draws from 255 values hit about 139 distinct ones;
	// fixed coordinates (1, 2, …) would give 2.
	if len(xsSeen) < 100 {
		t.Errorf("only %d distinct x coordinates in 100 splits: not random", len(xsSeen))
	}
	shares, err := Split([]byte{7}, MaxParts, MaxParts)
	if err != nil {
		t.Fatal(err)
	}
	checkShape(t, shares, 1, MaxParts)
	if got, err := Combine(shares); err != nil || !bytes.Equal(got, []byte{7}) {
		t.Errorf("255-of-255: Combine = %x, %v", got, err)
	}
}

func TestSplitParameterValidation(t *testing.T) {
	for _, tc := range []struct {
		secretLen, parts, threshold int
		ok                          bool
	}{
		{0, 3, 2, false},
		{1, 3, 1, false},
		{1, 3, 0, false},
		{1, 3, -1, false},
		{1, 2, 3, false},
		{1, 256, 2, false},
		{1, 256, 256, false},
		{1, -1, 2, false},
		{1, 2, 2, true},
		{1, 255, 2, true},
		{1, 255, 255, true},
		{32, 5, 3, true},
	} {
		shares, err := Split(make([]byte, tc.secretLen), tc.parts, tc.threshold)
		if tc.ok && err != nil {
			t.Errorf("Split(len %d, %d, %d): %v", tc.secretLen, tc.parts, tc.threshold, err)
		}
		if !tc.ok && (!errors.Is(err, ErrInvalidParameters) || shares != nil) {
			t.Errorf("Split(len %d, %d, %d) = %d shares, %v; want ErrInvalidParameters",
				tc.secretLen, tc.parts, tc.threshold, len(shares), err)
		}
	}
	if _, err := Split(nil, 3, 2); !errors.Is(err, ErrInvalidParameters) {
		t.Errorf("Split(nil) error = %v, want ErrInvalidParameters", err)
	}
}

func TestCombineRejectsMalformedShares(t *testing.T) {
	shares, err := Split([]byte("secret"), 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	sameX := bytes.Clone(shares[1])
	sameX[len(sameX)-1] = shares[0][len(shares[0])-1]
	zeroX := bytes.Clone(shares[1])
	zeroX[len(zeroX)-1] = 0

	for name, in := range map[string][][]byte{
		"nil":              nil,
		"one share":        shares[:1],
		"duplicate share":  {shares[0], shares[1], shares[0]},
		"duplicate x":      {shares[0], sameX},
		"zero x":           {shares[0], zeroX},
		"mismatched len":   {shares[0], shares[1][1:]},
		"longer second":    {shares[0], append(bytes.Clone(shares[1]), 9)},
		"x only":           {{1}, {2}},
		"empty shares":     {{}, {}},
		"empty second":     {shares[0], {}},
		"nil second share": {shares[0], nil},
	} {
		got, err := Combine(in)
		if !errors.Is(err, ErrInvalidShares) || got != nil {
			t.Errorf("%s: Combine = %x, %v; want ErrInvalidShares", name, got, err)
		}
	}
}

func TestCombineDoesNotModifyShares(t *testing.T) {
	shares, err := Split([]byte("secret"), 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	orig := cloneShares(shares)
	if _, err := Combine(shares); err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(shares, orig, bytes.Equal) {
		t.Fatal("Combine modified its input")
	}
}

// FuzzCombine feeds Combine arbitrary share lists. It must never panic; it
// either rejects the input with ErrInvalidShares or returns len-1 bytes that
// do not depend on the order of the shares and agree with the reference.
//
// Input encoding: data[0] = number of shares (mod 12), then one length byte
// per share, then the share bytes back to back (short at the end if data runs
// out), so the fuzzer reaches unequal lengths, empty shares and repeated x.
func FuzzCombine(f *testing.F) {
	for _, v := range vaultVectors {
		var shares [][]byte
		for _, s := range v.shares {
			b, _ := base64.StdEncoding.DecodeString(s)
			shares = append(shares, b)
		}
		f.Add(encodeShares(shares))
	}
	for _, tc := range []struct{ n, parts, threshold int }{{1, 2, 2}, {3, 3, 2}, {16, 5, 3}} {
		shares, err := Split(make([]byte, tc.n), tc.parts, tc.threshold)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(encodeShares(shares))
	}
	f.Add([]byte{})
	f.Add([]byte{2, 1, 1, 0, 0})
	f.Add([]byte{3, 2, 2, 2, 1, 1, 1, 1, 1, 2})

	f.Fuzz(func(t *testing.T, data []byte) {
		shares := decodeShares(data)
		orig := cloneShares(shares)
		got, err := Combine(shares)
		if !slices.EqualFunc(shares, orig, bytes.Equal) {
			t.Fatal("Combine modified its input")
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidShares) || got != nil {
				t.Fatalf("Combine = %x, %v; want nil and ErrInvalidShares", got, err)
			}
			return
		}
		if len(got) != len(shares[0])-1 {
			t.Fatalf("Combine returned %d bytes from %d-byte shares", len(got), len(shares[0]))
		}
		rev := slices.Clone(shares)
		slices.Reverse(rev)
		if again, err := Combine(rev); err != nil || !bytes.Equal(again, got) {
			t.Fatalf("reversed order: Combine = %x, %v; want %x", again, err, got)
		}
		if ref := refCombine(shares); !bytes.Equal(got, ref) {
			t.Fatalf("Combine = %x, reference %x", got, ref)
		}
	})
}

func BenchmarkSplit32(b *testing.B) {
	secret := make([]byte, 32)
	b.SetBytes(int64(len(secret)))
	for b.Loop() {
		if _, err := Split(secret, 5, 3); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCombine32(b *testing.B) {
	shares, err := Split(make([]byte, 32), 5, 3)
	if err != nil {
		b.Fatal(err)
	}
	shares = shares[:3]
	b.SetBytes(32)
	for b.Loop() {
		if _, err := Combine(shares); err != nil {
			b.Fatal(err)
		}
	}
}

// TestImports keeps the package on the standard library and away from
// non-cryptographic randomness (STYLE.md §1: layering is tested).
func TestImports(t *testing.T) {
	allowed := map[string]bool{"crypto/rand": true, "errors": true, "fmt": true}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if !allowed[path] {
				t.Errorf("%s imports %q; shamir may import only %v", name, path, slices.Sorted(maps.Keys(allowed)))
			}
		}
	}
}

// --- helpers ---

func checkShape(t *testing.T, shares [][]byte, secretLen, parts int) {
	t.Helper()
	if len(shares) != parts {
		t.Fatalf("got %d shares, want %d", len(shares), parts)
	}
	seen := map[byte]bool{}
	for i, s := range shares {
		if len(s) != secretLen+1 {
			t.Fatalf("share %d is %d bytes, want %d", i, len(s), secretLen+1)
		}
		x := s[secretLen]
		if x == 0 || seen[x] {
			t.Fatalf("share %d has x coordinate %d (zero or repeated)", i, x)
		}
		seen[x] = true
	}
	// Shares are separate slices: appending to one must not clobber another.
	if parts > 1 && cap(shares[0]) != len(shares[0]) {
		t.Fatalf("share capacity %d exceeds its length %d", cap(shares[0]), len(shares[0]))
	}
}

// forSubsets calls fn with every k-element subset of 0..n-1, in increasing
// order. fn may reorder the slice it receives.
func forSubsets(n, k int, fn func([]int)) {
	idx := make([]int, k)
	var rec func(start, depth int)
	rec = func(start, depth int) {
		if depth == k {
			fn(slices.Clone(idx))
			return
		}
		for i := start; i < n; i++ {
			idx[depth] = i
			rec(i+1, depth+1)
		}
	}
	rec(0, 0)
}

func pick(shares [][]byte, idx []int) [][]byte {
	out := make([][]byte, len(idx))
	for i, j := range idx {
		out[i] = shares[j]
	}
	return out
}

func cloneShares(shares [][]byte) [][]byte {
	out := make([][]byte, len(shares))
	for i, s := range shares {
		out[i] = bytes.Clone(s)
	}
	return out
}

func encodeShares(shares [][]byte) []byte {
	out := []byte{byte(len(shares))}
	for _, s := range shares {
		out = append(out, byte(len(s)))
	}
	for _, s := range shares {
		out = append(out, s...)
	}
	return out
}

func decodeShares(data []byte) [][]byte {
	if len(data) == 0 {
		return nil
	}
	n := int(data[0]) % 12
	data = data[1:]
	lens := data[:min(n, len(data))]
	data = data[len(lens):]
	shares := make([][]byte, n)
	for i := range n {
		l := 0
		if i < len(lens) {
			l = int(lens[i])
		}
		l = min(l, len(data))
		shares[i], data = data[:l:l], data[l:]
	}
	return shares
}

func newRand(t *testing.T) *rand.Rand {
	seed := rand.Uint64()
	t.Logf("math/rand seed %d (test inputs only)", seed)
	return rand.New(rand.NewPCG(seed, 0))
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}
