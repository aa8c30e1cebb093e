// Package throttle limits request rates the way Azure Key Vault does, but
// configurably: a token bucket per vault and one per principal (AZURE-API.md
// §8). A request proceeds only when both buckets hold a token; otherwise it
// is refused with the time after which a retry can succeed, which the api
// package sends as 429 Throttled with Retry-After.
//
// A bucket of Burst tokens refills at Rate tokens per second. Azure counts
// requests per 10-second window, so Burst defaults to ten seconds' worth of
// Rate: a client may spend a window's budget at once, then proceeds at Rate.
// A zero Rate turns that bucket off. Every request costs one token; Azure's
// weighting of expensive key types is not modelled.
//
// The package does no I/O and keeps no more buckets than there are vaults
// and principals that sent requests recently: full buckets are forgotten.
// Time comes from an injected clock.
package throttle
