package console

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/keyward/keyward/internal/route"
)

// Keys: list, create and import, versions, public key download (JWK or
// PEM), the rotation policy editor, rotate now, delete.
func init() {
	const get, post = http.MethodGet, http.MethodPost
	Register(&Page{Key: "keys", Title: "Keys", Scope: Vault, Order: 30, Routes: []route.Route[handler, string]{
		{Method: get, Pattern: "/ui/vaults/{vault}/keys", Op: "ConsoleKeyList", Handle: keyList},
		{Method: post, Pattern: "/ui/vaults/{vault}/keys", Op: "ConsoleKeyCreate", Handle: keyCreate},
		{Method: get, Pattern: "/ui/vaults/{vault}/keys/{name}", Op: "ConsoleKeyGet", Handle: keyPage},
		{Method: get, Pattern: "/ui/vaults/{vault}/keys/{name}/download", Op: "ConsoleKeyDownload", Handle: keyDownload},
		{Method: post, Pattern: "/ui/vaults/{vault}/keys/{name}/rotationpolicy", Op: "ConsoleKeyRotationPolicy", Handle: keyPolicy},
		{Method: post, Pattern: "/ui/vaults/{vault}/keys/{name}/rotate", Op: "ConsoleKeyRotate", Handle: keyRotate},
		{Method: post, Pattern: "/ui/vaults/{vault}/keys/{name}/delete", Op: "ConsoleKeyDelete", Handle: keyDelete},
	}})
}

func keyList(q *req) error {
	v, err := q.listObjects("keys")
	if err != nil {
		return err
	}
	return q.render("keys", http.StatusOK, q.p["vault"]+": keys", v)
}

func keyCreate(q *req) error {
	f := q.r.PostForm
	name := strings.TrimSpace(f.Get("name"))
	if !objectNameRE.MatchString(name) {
		return badName()
	}
	if jwk := strings.TrimSpace(f.Get("jwk")); jwk != "" {
		var key map[string]any
		if json.Unmarshal([]byte(jwk), &key) != nil {
			return &apiError{Status: http.StatusBadRequest, Code: "BadParameter", Message: "The key to import is not a JSON Web Key."}
		}
		if err := q.data(q.p["vault"], http.MethodPut, "keys/"+name, map[string]any{"key": key}, nil); err != nil {
			return err
		}
		return q.redirect("/ui/vaults/"+q.p["vault"]+"/keys/"+name, "Key "+name+" imported.")
	}
	body := map[string]any{"kty": cmpOr(f.Get("kty"), "RSA")}
	switch body["kty"] {
	case "RSA", "RSA-HSM":
		size, _ := strconv.Atoi(cmpOr(f.Get("size"), "2048"))
		body["key_size"] = size
	case "EC", "EC-HSM":
		body["crv"] = cmpOr(f.Get("crv"), "P-256")
	}
	if err := q.data(q.p["vault"], http.MethodPost, "keys/"+name+"/create", body, nil); err != nil {
		return err
	}
	return q.redirect("/ui/vaults/"+q.p["vault"]+"/keys/"+name, "Key "+name+" created.")
}

type keyBundle struct {
	Key        map[string]any    `json:"key"`
	Attributes map[string]any    `json:"attributes"`
	Tags       map[string]string `json:"tags"`
}

type rotationPolicy struct {
	ID              string `json:"id,omitempty"`
	LifetimeActions []struct {
		Trigger struct {
			TimeAfterCreate  string `json:"timeAfterCreate,omitempty"`
			TimeBeforeExpiry string `json:"timeBeforeExpiry,omitempty"`
		} `json:"trigger"`
		Action struct {
			Type string `json:"type"`
		} `json:"action"`
	} `json:"lifetimeActions"`
	Attributes *struct {
		ExpiryTime string `json:"expiryTime,omitempty"`
	} `json:"attributes,omitempty"`
}

type policyForm struct{ RotateAfter, RotateBefore, NotifyBefore, Expiry, Error string }

func (p *rotationPolicy) form() policyForm {
	var f policyForm
	for _, a := range p.LifetimeActions {
		switch strings.ToLower(a.Action.Type) {
		case "rotate":
			f.RotateAfter, f.RotateBefore = a.Trigger.TimeAfterCreate, a.Trigger.TimeBeforeExpiry
		case "notify":
			f.NotifyBefore = a.Trigger.TimeBeforeExpiry
		}
	}
	if p.Attributes != nil {
		f.Expiry = p.Attributes.ExpiryTime
	}
	return f
}

type keyView struct {
	Name     string
	Key      keyBundle
	KeyJSON  string
	Versions []item
	Policy   policyForm
}

func keyPage(q *req) error {
	name := q.p["name"]
	if !objectNameRE.MatchString(name) {
		return badName()
	}
	v := keyView{Name: name}
	if err := q.data(q.p["vault"], http.MethodGet, "keys/"+name, nil, &v.Key); err != nil {
		return err
	}
	raw, _ := json.MarshalIndent(v.Key.Key, "", "  ")
	v.KeyJSON = string(raw)
	var l itemList
	if err := q.data(q.p["vault"], http.MethodGet, "keys/"+name+"/versions?maxresults=25", nil, &l); err != nil {
		return err
	}
	sort.Slice(l.Value, func(i, j int) bool { return l.Value[i].Attributes.Created > l.Value[j].Attributes.Created })
	v.Versions = l.Value
	var p rotationPolicy
	if err := q.data(q.p["vault"], http.MethodGet, "keys/"+name+"/rotationpolicy", nil, &p); err != nil {
		// Reading keys does not always include reading the policy.
		v.Policy.Error = err.(*apiError).Message
	} else {
		v.Policy = p.form()
	}
	return q.render("key", http.StatusOK, name, &v)
}

// isoDuration accepts ISO 8601 durations as Key Vault writes them (P90D,
// P1Y2M, PT12H); the data plane checks the policy itself.
var isoDuration = regexp.MustCompile(`^P(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(\d+H)?(\d+M)?(\d+S)?)?$`)

func keyPolicy(q *req) error {
	name, f := q.p["name"], q.r.PostForm
	if !objectNameRE.MatchString(name) {
		return badName()
	}
	type trig = map[string]string
	var actions []map[string]any
	add := func(field, kind, action string) error {
		v := strings.ToUpper(strings.TrimSpace(f.Get(field)))
		if v == "" {
			return nil
		}
		if !isoDuration.MatchString(v) || v == "P" {
			return &apiError{Status: http.StatusBadRequest, Code: "BadParameter", Message: "'" + v + "' is not an ISO 8601 duration such as P90D."}
		}
		actions = append(actions, map[string]any{"trigger": trig{kind: v}, "action": map[string]string{"type": action}})
		return nil
	}
	for _, a := range [][3]string{{"rotate_after", "timeAfterCreate", "Rotate"}, {"rotate_before", "timeBeforeExpiry", "Rotate"}, {"notify_before", "timeBeforeExpiry", "Notify"}} {
		if err := add(a[0], a[1], a[2]); err != nil {
			return err
		}
	}
	body := map[string]any{"lifetimeActions": actions}
	if e := strings.ToUpper(strings.TrimSpace(f.Get("expiry"))); e != "" {
		body["attributes"] = map[string]string{"expiryTime": e}
	}
	if err := q.data(q.p["vault"], http.MethodPut, "keys/"+name+"/rotationpolicy", body, nil); err != nil {
		return err
	}
	return q.redirect("/ui/vaults/"+q.p["vault"]+"/keys/"+name, "Rotation policy saved.")
}

func keyRotate(q *req) error {
	name := q.p["name"]
	if !objectNameRE.MatchString(name) {
		return badName()
	}
	if err := q.data(q.p["vault"], http.MethodPost, "keys/"+name+"/rotate", nil, nil); err != nil {
		return err
	}
	return q.redirect("/ui/vaults/"+q.p["vault"]+"/keys/"+name, "Key "+name+" rotated: a new version is current.")
}

func keyDelete(q *req) error {
	name := q.p["name"]
	if !objectNameRE.MatchString(name) {
		return badName()
	}
	if err := q.data(q.p["vault"], http.MethodDelete, "keys/"+name, nil, nil); err != nil {
		return err
	}
	return q.redirect("/ui/vaults/"+q.p["vault"]+"/deleted", "Key "+name+" deleted.")
}

// keyDownload sends the public key as a JWK (.json) or, for RSA and EC
// keys, as a PEM SubjectPublicKeyInfo.
func keyDownload(q *req) error {
	name := q.p["name"]
	if !objectNameRE.MatchString(name) {
		return badName()
	}
	var k keyBundle
	if err := q.data(q.p["vault"], http.MethodGet, "keys/"+name, nil, &k); err != nil {
		return err
	}
	h := q.w.Header()
	if q.r.URL.Query().Get("format") == "pem" {
		der, err := publicDER(k.Key)
		if err != nil {
			return &apiError{Status: http.StatusBadRequest, Code: "NoPEM", Message: "This key type has no PEM public key; download the JWK."}
		}
		h.Set("Content-Type", "application/x-pem-file")
		h.Set("Content-Disposition", `attachment; filename="`+name+`.pem"`)
		pem.Encode(q.w, &pem.Block{Type: "PUBLIC KEY", Bytes: der})
		return nil
	}
	raw, _ := json.MarshalIndent(k.Key, "", "  ")
	h.Set("Content-Type", "application/json")
	h.Set("Content-Disposition", `attachment; filename="`+name+`.json"`)
	q.w.Write(raw)
	return nil
}

func b64int(v any) *big.Int {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(str(v), "="))
	if err != nil {
		return nil
	}
	return new(big.Int).SetBytes(b)
}

func publicDER(jwk map[string]any) ([]byte, error) {
	switch strings.TrimSuffix(str(jwk["kty"]), "-HSM") {
	case "RSA":
		n, e := b64int(jwk["n"]), b64int(jwk["e"])
		if n == nil || e == nil || !e.IsInt64() {
			return nil, errNoPEM
		}
		return x509.MarshalPKIXPublicKey(&rsa.PublicKey{N: n, E: int(e.Int64())})
	case "EC":
		var c elliptic.Curve
		switch str(jwk["crv"]) {
		case "P-256":
			c = elliptic.P256()
		case "P-384":
			c = elliptic.P384()
		case "P-521":
			c = elliptic.P521()
		default:
			return nil, errNoPEM
		}
		x, y := b64int(jwk["x"]), b64int(jwk["y"])
		if x == nil || y == nil {
			return nil, errNoPEM
		}
		return x509.MarshalPKIXPublicKey(&ecdsa.PublicKey{Curve: c, X: x, Y: y})
	}
	return nil, errNoPEM
}

var errNoPEM = &apiError{Status: http.StatusBadRequest, Code: "NoPEM", Message: "no PEM form"}
