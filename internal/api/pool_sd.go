package api

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"

	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/securitydomain"
)

// The security domain endpoints (CRYPTO.md §5.1; the Python and .NET
// securitydomain clients). Download and upload complete at once: the 202
// carries Azure-AsyncOperation, whose status is already Success.

func poolSecurityDomainRoutes() []kwroute {
	const o = "securitydomain"
	return []kwroute{
		{Method: http.MethodPost, Pattern: "/securitydomain/download", Op: "HSMSecurityDomainDownload", Object: o, Action: authz.HSMSDDownload, Handle: sdDownload},
		{Method: http.MethodGet, Pattern: "/securitydomain/download/pending", Op: "HSMSecurityDomainDownloadStatus", Object: o, Action: authz.HSMSDDownloadRead, Handle: sdStatus},
		{Method: http.MethodGet, Pattern: "/securitydomain/upload", Op: "HSMSecurityDomainTransferKey", Object: o, Action: authz.HSMSDTransferKeyRead, Handle: sdTransferKey},
		{Method: http.MethodPost, Pattern: "/securitydomain/upload", Op: "HSMSecurityDomainUpload", Object: o, Action: authz.HSMSDUpload, Handle: sdUpload},
		{Method: http.MethodGet, Pattern: "/securitydomain/upload/pending", Op: "HSMSecurityDomainUploadStatus", Object: o, Action: authz.HSMSDUploadRead, Handle: sdStatus},
	}
}

// sdCertWire is one custodian certificate as a JWK.
type sdCertWire struct {
	Kty     string   `json:"kty"`
	N       b64url   `json:"n"`
	E       b64url   `json:"e"`
	X5c     []string `json:"x5c"`
	X5tS256 string   `json:"x5t#S256"`
}

type sdStatusWire struct {
	Status        string `json:"status"`
	StatusDetails string `json:"status_details,omitempty"`
}

func (rq *request) asyncOp(path string) {
	setHeader(rq.w.Header(), "Azure-Asyncoperation", rq.base+path+"?api-version="+rq.apiVersion)
}

func sdDownload(rq *request) error {
	var b struct {
		Certificates []sdCertWire `json:"certificates"`
		Required     *int         `json:"required"`
	}
	if err := rq.decode(&b); err != nil {
		return err
	}
	if len(b.Certificates) < 3 || len(b.Certificates) > 10 {
		return badParam("certificates must hold 3 to 10 custodian certificates.")
	}
	req := 2
	if b.Required != nil {
		req = *b.Required
	}
	var cs []securitydomain.Custodian
	for _, c := range b.Certificates {
		var pub *rsa.PublicKey
		x5t := c.X5tS256
		if len(c.X5c) > 0 {
			der, err := base64.StdEncoding.DecodeString(c.X5c[0])
			if err != nil {
				return badParam("x5c must hold base64 DER certificates.")
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				return badParam("A custodian certificate does not parse.")
			}
			rk, ok := cert.PublicKey.(*rsa.PublicKey)
			if !ok {
				return badParam("Custodian certificates must hold RSA keys.")
			}
			pub, x5t = rk, securitydomain.Thumbprint(der)
		} else {
			if c.Kty != "RSA" || len(c.N) < 256 || len(c.N) > 513 || len(c.E) == 0 || len(c.E) > 4 {
				return badParam("Custodian keys must be RSA (2048 to 4096 bits).")
			}
			e := int(new(big.Int).SetBytes(c.E).Int64())
			pub = &rsa.PublicKey{N: new(big.Int).SetBytes(c.N), E: e}
		}
		if pub.N.BitLen() < 2048 || pub.N.BitLen() > 4096 || pub.E < 3 || pub.E%2 == 0 {
			return badParam("Custodian keys must be RSA (2048 to 4096 bits, odd exponent).")
		}
		cs = append(cs, securitydomain.Custodian{Key: pub, X5t256: x5t})
	}
	doc, err := rq.h.pools.DownloadSecurityDomain(rq.r.Context(), rq.pool, cs, req)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	rq.asyncOp("/securitydomain/download/pending")
	return rq.reply(http.StatusAccepted, map[string]string{"value": string(raw)})
}

func sdStatus(rq *request) error {
	if rq.pool.Active() {
		return rq.reply(http.StatusOK, sdStatusWire{Status: "Success", StatusDetails: "The managed HSM is activated."})
	}
	return rq.reply(http.StatusOK, sdStatusWire{Status: "Failed", StatusDetails: "The managed HSM is not activated."})
}

func sdTransferKey(rq *request) error {
	pub, err := rq.h.pools.TransferKey(rq.r.Context(), rq.pool)
	if err != nil {
		return err
	}
	e := big.NewInt(int64(pub.E))
	return rq.reply(http.StatusOK, map[string]any{"key_format": "jwk",
		"transfer_key": map[string]any{"kty": "RSA", "key_ops": []string{"wrapKey", "encrypt"}, "n": b64url(pub.N.Bytes()), "e": b64url(e.Bytes())}})
}

func sdUpload(rq *request) error {
	var b struct {
		Value string `json:"value"`
	}
	if err := rq.decode(&b); err != nil {
		return err
	}
	doc, err := securitydomain.Parse([]byte(b.Value))
	if err != nil {
		return badParam("value must hold a security domain document prepared for this managed HSM's transfer key.")
	}
	if err := rq.h.pools.UploadSecurityDomain(rq.r.Context(), rq.pool, doc); err != nil {
		return err
	}
	rq.asyncOp("/securitydomain/upload/pending")
	return rq.reply(http.StatusAccepted, sdStatusWire{Status: "Success", StatusDetails: "The security domain was uploaded; the managed HSM is activated."})
}
