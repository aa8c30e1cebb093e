// Package mgmt is Keyward's management plane: the Azure Resource Manager
// surface (AZURE-API.md §6) for subscriptions, resource groups, vaults,
// access policies, deleted vaults, role definitions, role assignments and
// PIM-style eligible assignments, plus Keyward's directory API (users,
// groups, applications, managed identities, workload bindings, federated
// issuers). It is served on management.{suffix} with tokens whose audience
// is the management resource.
//
// It owns the records authorization decides from and rebuilds the
// authorization index (authz.Index) after every change, swapping it into
// the authz.Engine atomically; decisions themselves never wait for
// storage. Records live behind the barrier: tenant-wide ones under sys/
// (subscriptions, resource groups, role assignments and definitions), a
// vault's own (access policies, network rules, permission model, tags)
// as "props" in the vault's barrier view, so purging the vault removes them.
//
// Like identity's token service, this package speaks HTTP: it is a wire
// package beside api, not below it, and it is the only place that knows
// ARM's JSON shapes. Its network rules never apply to itself: firewalls
// are a data-plane matter (seed: "Key Vault control plane operations ...
// are not affected by firewalls").
package mgmt
