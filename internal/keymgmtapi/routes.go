// Package keymgmtapi is the surface of the Key Management engine
// (internal/keymgmt): HashiCorp Vault's keymgmt API at
// {keymgmt_address}/v1/keymgmt/ — its paths, methods (LIST, and GET with
// ?list=true), request fields and the {"data":…} / {"errors":[…]}
// envelopes — so Vault's and OpenBao's CLIs and Go API client work
// unchanged. It contributes a routes table (internal/route), handlers and
// one error table (errors.go); the pipeline in internal/api authenticates
// the caller (a Keyward access token for the management resource, as
// Authorization: Bearer or X-Vault-Token) and hands the request to Serve.
package keymgmtapi

import (
	"net/http"

	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/route"
)

// Prefix is the path every route of this surface begins with.
const Prefix = "/v1/keymgmt"

const methodList = "LIST"

func routes() route.Table[handler, authz.Action] {
	return route.Compile([]route.Route[handler, authz.Action]{
		{Method: methodList, Pattern: "/key", Op: "KeyMgmtKeyList", Object: "key", Action: authz.KeyMgmtKeysRead, Handle: listKeys},
		{Method: http.MethodPost, Pattern: "/key/{name}/rotate", Op: "KeyMgmtKeyRotate", Object: "key", Action: authz.KeyMgmtKeysRotate, Handle: rotateKey},
		{Method: http.MethodPut, Pattern: "/key/{name}/rotate", Op: "KeyMgmtKeyRotate", Object: "key", Action: authz.KeyMgmtKeysRotate, Handle: rotateKey},
		{Method: methodList, Pattern: "/key/{name}/kms", Op: "KeyMgmtKeyKMSList", Object: "key", Action: authz.KeyMgmtDistributionRead, Handle: listKeyKMS},
		{Method: http.MethodGet, Pattern: "/key/{name}", Op: "KeyMgmtKeyGet", Object: "key", Action: authz.KeyMgmtKeysRead, Handle: getKey},
		{Method: http.MethodPost, Pattern: "/key/{name}", Op: "KeyMgmtKeyWrite", Object: "key", Action: authz.KeyMgmtKeysWrite, Handle: writeKey},
		{Method: http.MethodPut, Pattern: "/key/{name}", Op: "KeyMgmtKeyWrite", Object: "key", Action: authz.KeyMgmtKeysWrite, Handle: writeKey},
		{Method: http.MethodDelete, Pattern: "/key/{name}", Op: "KeyMgmtKeyDelete", Object: "key", Action: authz.KeyMgmtKeysDelete, Handle: deleteKey},

		{Method: methodList, Pattern: "/kms", Op: "KeyMgmtKMSList", Object: "kms", Action: authz.KeyMgmtKMSRead, Handle: listKMS},
		{Method: methodList, Pattern: "/kms/{kms}/key", Op: "KeyMgmtDistributionList", Object: "kms", Action: authz.KeyMgmtDistributionRead, Handle: listDistributions},
		{Method: http.MethodGet, Pattern: "/kms/{kms}/key/{name}", Op: "KeyMgmtDistributionGet", Object: "kms", Action: authz.KeyMgmtDistributionRead, Handle: getDistribution},
		{Method: http.MethodPost, Pattern: "/kms/{kms}/key/{name}", Op: "KeyMgmtDistribute", Object: "kms", Action: authz.KeyMgmtDistributionWrite, Handle: distribute},
		{Method: http.MethodPut, Pattern: "/kms/{kms}/key/{name}", Op: "KeyMgmtDistribute", Object: "kms", Action: authz.KeyMgmtDistributionWrite, Handle: distribute},
		{Method: http.MethodDelete, Pattern: "/kms/{kms}/key/{name}", Op: "KeyMgmtDistributionRemove", Object: "kms", Action: authz.KeyMgmtDistributionDel, Handle: removeDistribution},
		{Method: http.MethodGet, Pattern: "/kms/{kms}", Op: "KeyMgmtKMSGet", Object: "kms", Action: authz.KeyMgmtKMSRead, Handle: getKMS},
		{Method: http.MethodPost, Pattern: "/kms/{kms}", Op: "KeyMgmtKMSWrite", Object: "kms", Action: authz.KeyMgmtKMSWrite, Handle: writeKMS},
		{Method: http.MethodPut, Pattern: "/kms/{kms}", Op: "KeyMgmtKMSWrite", Object: "kms", Action: authz.KeyMgmtKMSWrite, Handle: writeKMS},
		{Method: http.MethodDelete, Pattern: "/kms/{kms}", Op: "KeyMgmtKMSDelete", Object: "kms", Action: authz.KeyMgmtKMSDelete, Handle: deleteKMS},
	})
}
