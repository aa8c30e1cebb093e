// Package shamir splits a secret into shares and combines them again with
// Shamir's secret sharing over GF(2^8).
//
// It owns the arithmetic and the share format and nothing else: it does not
// store, print, log or transmit shares, and it never imports anything but the
// standard library. The barrier uses it for the Shamir seal (CRYPTO.md §5.3):
// the unseal key is split N-of-T, the root key is stored encrypted under the
// unseal key with AES-GCM, and that GCM tag is what proves a combination right.
//
// # Share format
//
// The construction is the one HashiCorp Vault and OpenBao use, so their shares
// combine here and ours there. Every byte of the secret is the constant term
// of its own random polynomial of degree threshold-1 over GF(2^8) with the AES
// reduction polynomial x^8+x^4+x^3+x+1 (0x11b). A share is the polynomial
// values for all bytes followed by one byte holding the x coordinate:
//
//	share = y[0] ‖ y[1] ‖ … ‖ y[len(secret)-1] ‖ x      (len(secret)+1 bytes)
//
// The x coordinates of one split are distinct, non-zero and chosen at random;
// all randomness comes from crypto/rand.
//
// # What Combine cannot tell you
//
// Shares carry no integrity protection and the threshold is not recorded in
// them. Combine interpolates whatever it is given: fewer than threshold shares,
// shares from different splits, or a single corrupted share all yield bytes
// of the right length that are not the secret, without an error. Callers
// must check the result by authenticated decryption (the barrier opens the
// GCM-sealed root key with it) and report one vague failure. Combine only
// rejects shares that are malformed: fewer than two, unequal lengths, an x
// coordinate of zero, or the same x coordinate twice.
//
// # Side channels
//
// Field multiplication is a fixed sequence of shifts, XORs and masks (no
// log/exp tables indexed by secret bytes, no branches on them), and inversion
// is exponentiation to the power 254 with that multiplication. The running
// time of Split and Combine depends only on the length of the secret and the
// number of shares, which are public. Buffers holding polynomial coefficients
// are cleared before returning; the returned shares and secret belong to the
// caller, who should clear them when done.
package shamir
