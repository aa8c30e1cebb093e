package api

import (
	"github.com/keyward/keyward/internal/vault"
)

// attributesWire is the "attributes" object of keys, secrets and
// certificates. Times are integer Unix seconds (AZURE-API.md §0.1).
type attributesWire struct {
	Enabled         *bool  `json:"enabled,omitempty"`
	NotBefore       *int64 `json:"nbf,omitempty"`
	Expires         *int64 `json:"exp,omitempty"`
	Created         *int64 `json:"created,omitempty"`
	Updated         *int64 `json:"updated,omitempty"`
	RecoveryLevel   string `json:"recoveryLevel,omitempty"`
	RecoverableDays *int   `json:"recoverableDays,omitempty"`
	Exportable      *bool  `json:"exportable,omitempty"`
	HSMPlatform     string `json:"hsmPlatform,omitempty"`
	// Attestation is set only by GET /keys/{n}/{v}/attestation (keys.go).
	Attestation *keyAttestationWire `json:"attestation,omitempty"`
}

// patch turns request attributes into a domain patch; read-only fields
// sent by clients are ignored, as Azure does.
func (a *attributesWire) patch() *vault.AttributesPatch {
	if a == nil {
		return nil
	}
	return &vault.AttributesPatch{Enabled: a.Enabled, NotBefore: a.NotBefore, Expires: a.Expires, Exportable: a.Exportable}
}

func attributesOut(a vault.Attributes, v *vault.Vault) attributesWire {
	enabled, created, updated := a.Enabled, a.Created, a.Updated
	days := v.RetentionDays
	return attributesWire{
		Enabled:         &enabled,
		NotBefore:       a.NotBefore,
		Expires:         a.Expires,
		Created:         &created,
		Updated:         &updated,
		RecoveryLevel:   v.RecoveryLevel(),
		RecoverableDays: &days,
		Exportable:      a.Exportable,
	}
}

// deletedWire are the fields a deleted object adds.
type deletedWire struct {
	RecoveryID         string `json:"recoveryId,omitempty"`
	DeletedDate        *int64 `json:"deletedDate,omitempty"`
	ScheduledPurgeDate *int64 `json:"scheduledPurgeDate,omitempty"`
}

func (rq *request) deletedOut(collection, name string, d *vault.DeletedInfo) deletedWire {
	if d == nil {
		return deletedWire{}
	}
	dd, sp := d.DeletedDate, d.ScheduledPurgeDate
	return deletedWire{RecoveryID: rq.base + "/deleted" + collection + "/" + name, DeletedDate: &dd, ScheduledPurgeDate: &sp}
}

// backupWire is the body of backup responses and restore requests.
type backupWire struct {
	Value *string `json:"value"`
}
