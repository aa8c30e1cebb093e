// Package bench is the library behind `keyward bench`: a load generator that
// drives a running Keyward over HTTPS the way an application does, and
// measures how close the server comes to the cost of the cryptography it
// performs.
//
// A run has three phases:
//
//  1. Setup. The tool reads the dev server's dev.json (credentials, CA file,
//     listen address), obtains a bearer token from the token endpoint named
//     by the vault's 401 challenge (like any SDK), and creates what the
//     operation needs: a secret to read, an RSA-2048 or P-256 key.
//  2. Load. Concurrency workers send the operation over keep-alive
//     connections (HTTP/1.1, one connection per worker, driven by the lean
//     client of lean.go or by net/http; or one multiplexed HTTP/2
//     connection) for a duration or a request count. Each request's latency
//     and status is recorded; the server's CPU time and page faults are read
//     from /proc/PID/stat before and after, so the report gives server CPU
//     per request independently of the client sharing the cores.
//  3. Raw. The bare primitive the operation is built on (rsa.SignPKCS1v15,
//     ecdsa.SignASN1, one AES-256-GCM open, ...) runs in this process on
//     every core for a while, and the report divides the server's rate by
//     it: the fraction of the machine's crypto limit Keyward reaches. It
//     also divides the raw CPU per operation by the server's CPU per
//     request, the same fraction without the client's share of the cores.
//     For the HSM operations the primitive is C_SignInit + C_Sign on the
//     same object of the dev server's SoftHSM2 token, one session per
//     worker (hsm.go); SoftHSM2 runs inside the calling process, so the
//     server's CPU includes the token's work and the raw CPU is that work
//     alone.
//
// The client never sees the server's internals: it is a separate process
// that speaks only the Azure Key Vault wire protocol. It imports nothing
// from Keyward's server packages, so it measures what a client measures.
// Its numbers are a report, never an assertion: tests check the report's
// shape and that no request failed, not the speed.
package bench
