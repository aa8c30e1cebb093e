// Package barrier is Keyward's root of trust and the envelope encryption
// between the domain and storage.
//
// Key hierarchy (CRYPTO.md §5.3):
//
//	unseal key UK (never stored; Shamir-split into shares shown once at init)
//	 └─ root key RK (AES-256), stored as AES-GCM(UK, RK) under sys/barrier/root
//	     └─ one keyring per scope (the system scope, each vault, each tenant),
//	        stored as AES-GCM(RK, keyring) under sys/barrier/keyring/{scope}
//	         └─ every stored value: AES-256-GCM under a per-storage-key subkey
//	            HKDF-SHA256(scope key, info = storage key), the storage key as AAD
//
// Deriving a subkey per storage key means no single AES key ever encrypts
// more than the handful of writes made to one name, so the 2^32 random-nonce
// bound of GCM is never approached, and a blob copied under another name
// fails to open twice over (different key, different AAD).
//
// Derivation is kept off the hot path two ways, neither of which changes a
// byte of what is stored: each term's HKDF-Extract is computed once when its
// keyring is loaded (a subkey is then one HKDF-Expand), and the AEADs of
// recently used storage keys are kept in a small bounded cache
// (maxCachedAEADs), emptied on Seal. The cache holds nothing a sealed barrier
// may keep: it lives exactly as long as the term keys it is derived from.
//
// The barrier also owns the storage key space (view.go): each vault, each
// tenant and the system have a namespace under their own keyring, and a
// component receives the View of its namespace rather than building keys
// of another's layout. The package is split by concern: seal.go (seal
// state and root key), keyring.go (per-scope keyrings), envelope.go (the
// format of sealed values and the subkey cache), view.go (namespaces).
//
// The barrier never hands plaintext to storage and never logs key material.
// While sealed it holds no key and every read or write fails with ErrSealed.
package barrier
