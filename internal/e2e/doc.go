// Package e2e holds end-to-end tests: a real Keyward on a loopback port
// with real TLS, driven by the official Azure SDK clients.
package e2e
