// Package acme obtains certificates from ACME (RFC 8555) certificate
// authorities — Let's Encrypt, step-ca, Pebble, any ACME CA — for vault
// certificates whose policy names an issuer with provider "ACME". It
// implements certificates.ExternalCA; the certificates service keeps the certificate key and the
// account key (an ordinary vault key that signs every ACME request through
// the vault), this package only speaks HTTP.
//
// Challenges are solved in one of two ways:
//
//   - HTTP-01 by Keyward itself: Responder serves
//     /.well-known/acme-challenge/{token} on a plain-HTTP listener the
//     operator exposes on port 80 of every name Keyward certifies;
//   - through the challenge hook, an HTTPS endpoint the operator runs
//     (a DNS provider's API, a web server's document root). Keyward POSTs
//     a Hook JSON body with action "present" before asking the CA to
//     validate and "cleanup" afterwards, signed like event deliveries
//     (Keyward-Signature: t=…,v1=HMAC-SHA256(secret, t + "." + body)).
//     The hook answers 2xx once the challenge is in place (for DNS-01,
//     once the TXT record is visible to the CA). DNS-01 is the default
//     hook challenge: it is the only way to wildcard names.
//
// The package never sees a private key: certificate keys never leave the
// vault, the CSR arrives signed, and the account key is a crypto.Signer
// backed by a vault key.
package acme
