// Package keys implements Keyward's software keys: generation, JWK import and
// export, and every cryptographic operation a Key Vault standard or premium
// vault key supports (AZURE-API.md §1.2, §4; CRYPTO.md §3).
//
// # Model
//
// A [Key] is an immutable, parsed RSA or EC key, private or public-only. It is
// safe for concurrent use; RSA CRT values are precomputed once when the key is
// built, so a Key should be parsed once and reused. Operations take and return
// raw bytes: base64url, JSON and HTTP belong to the api package, and sealing
// and storage belong to the vault layer. This package never logs, and no
// error it returns contains key material, plaintext, digests or signatures.
//
// The vault layer stores what [Key.MarshalPrivate] returns (PKCS#8 DER) inside
// the barrier and hands it back to [ParsePrivate]. It reaches both through the
// [Protector] interface, whose [Software] implementation is this package; an
// HSM-backed Protector keeps the private key in the token and stores a handle.
// key_ops and attributes (enabled, nbf, exp) are vault policy, not key
// material: this package neither stores nor enforces them.
//
// Supported keys: RSA 2048 to 4096 bits (generation: 2048, 3072, 4096, e =
// 65537) and EC on P-256, P-256K (secp256k1), P-384 and P-521. Algorithms:
//
//	RSA  sign/verify   RS256 RS384 RS512 (PKCS #1 v1.5), PS256 PS384 PS512 (PSS, salt = hash length)
//	RSA  encrypt/wrap  RSA1_5, RSA-OAEP (SHA-1, MGF1-SHA-1), RSA-OAEP-256 (SHA-256, MGF1-SHA-256); empty label
//	EC   sign/verify   ES256 (P-256), ES256K (P-256K), ES384 (P-384), ES512 (P-521); raw r‖s (IEEE P1363)
//
// Sign and Verify take the digest, never the message, as Key Vault does; its
// length must equal the algorithm's hash size.
//
// # Constant time
//
// RSA private-key operations use crypto/rsa (constant-time bigmod arithmetic,
// constant-time padding checks). ECDSA on P-256, P-384 and P-521 uses
// crypto/ecdsa, constant time for private-key operations. ES256K uses
// github.com/decred/dcrd/dcrec/secp256k1/v4, whose RFC 6979 signing computes
// k·G with a variable-time scalar multiplication (ScalarBaseMultNonConst):
// timing may leak information about the nonce. Treat P-256K software keys as
// weaker against local side channels than the NIST curves. Verification and
// all public-key operations handle public inputs and are not constant time.
//
// # Decryption failures and padding oracles
//
// Decrypt and UnwrapKey return the single error [ErrDecryption] for every
// failure that depends on the ciphertext: wrong length, out of range, bad
// OAEP or PKCS #1 v1.5 padding. The padding checks inside crypto/rsa are
// constant time; only the final success/failure is observable, and Key Vault's
// API has to report it.
//
// For RSA1_5 the package uses [rsa.DecryptPKCS1v15] and reports bad padding as
// ErrDecryption. It does not use DecryptPKCS1v15SessionKey semantics (on
// failure, return random bytes of an expected length) because a Key Vault
// decrypt or unwrapKey request carries no expected length and clients rely on
// an error for a wrong key; implicit rejection would silently hand them
// garbage. The success/failure bit is therefore a Bleichenbacher oracle to
// anyone who may call decrypt, who can decrypt anyway; applications that turn
// third-party ciphertexts into RSA1_5 unwrap calls must not reveal the result
// (as TLS servers must not). RSA1_5 is "not recommended" by Key Vault and is
// refused in FIPS 140-only mode; prefer RSA-OAEP-256.
//
// # FIPS 140-3
//
// All algorithms except ES256K come from the Go Cryptographic Module
// (crypto/internal/fips140). Release builds should freeze the validated
// module version:
//
//	GOFIPS140=v1.0.0 go build ./cmd/keyward
//
// which also defaults the binary to GODEBUG=fips140=on (self-tests,
// pairwise-consistency tests on key generation; nothing is refused).
// GODEBUG=fips140=only is the hardened mode: when [fips140.Enforced] reports
// true, this package refuses, with [ErrNotAllowedInFIPSMode] and before
// calling into any crypto (some stdlib functions panic in that mode):
//
//   - RSA1_5 and RSA-OAEP (SHA-1) encryption, decryption, wrap and unwrap;
//   - P-256K keys (generation, import, ES256K sign and verify): secp256k1 is
//     not an approved curve and decred's code is outside the module;
//   - imported RSA keys the module would not approve (public exponent
//     ≤ 2^16, odd modulus size).
//
// RS*, PS*, ES256/384/512 and RSA-OAEP-256 work in every mode. Keys already
// stored are still parsed by [ParsePrivate] so the vault can show and delete
// them; only their use is refused. [Software.Platform] reports the mode for
// the key attribute hsmPlatform.
package keys
