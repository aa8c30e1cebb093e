// Package devca is the certificate authority of Keyward's dev mode
// (`keyward server --dev`, DESIGN.md "contract — dev server"): a local CA and
// a TLS server certificate kept in the data directory, so that the official
// SDKs can talk to a dev server over real TLS by trusting one CA file.
//
// It owns four files in one directory (see Files): the CA certificate and
// key, created once and then never replaced, and a server certificate and key
// that are reissued whenever the requested names change or the certificate
// is within 30 days of expiry. Ensure is the whole API.
//
// # What it must never do
//
//   - Serve outside dev mode. The CA key sits unencrypted on disk next to the
//     data; anyone who can read the directory can mint certificates that
//     every client trusting this CA accepts. Hand clients the CA file (dev.json
//     "ca_file"); never install it into a system trust store.
//   - Replace an existing CA. Clients have been told to trust it; a silently
//     new CA would break them, and a missing or damaged CA key is reported as
//     an error for a human to resolve (delete the directory to start over).
//   - Write a private key readable by anyone but the owner. Keys are written
//     0600 from the moment the file is created, and an existing key file with
//     group or other permissions is tightened to 0600 when it is loaded.
//   - Hand out the CA private key. It is read, used to sign, and dropped; CA
//     exposes only certificates, the server key and the pool.
//   - Read the clock. The caller passes the time in (STYLE.md §4).
//
// # Files and crash safety
//
// Keys are PKCS#8 PEM ("PRIVATE KEY"), certificates PEM ("CERTIFICATE");
// the server certificate file holds the leaf only. Every file is written to a
// temporary file in the same directory, synced, and renamed over the old one,
// so a reader sees the old or the new file, never a torn one. A key is always
// written before its certificate: after a crash in between, the server pair
// no longer matches and is reissued on the next call, and a CA key without a
// CA certificate means the CA was never completed (no client can trust a
// certificate that was never written), so it is created afresh.
//
// Ensure is not safe for concurrent use on the same directory by several
// processes; one dev server owns its data directory.
//
// # Certificates
//
// CA: ECDSA P-256, self-signed, CN "Keyward Dev CA", valid 10 years,
// BasicConstraints CA:true with MaxPathLen 0, KeyUsage CertSign|CRLSign.
// Server: ECDSA P-256, valid 365 days (never past the CA), ExtKeyUsage
// ServerAuth, KeyUsage DigitalSignature, subject alternative names exactly
// the DNS names and IP addresses asked for (a "*.vault.localhost" wildcard
// covers every vault). Both have random 128-bit serial numbers and are
// backdated by one hour to tolerate clock skew between server and clients.
package devca
