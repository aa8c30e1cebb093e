package keymgmtapi

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/errs"
	"github.com/keyward/keyward/internal/jsonbody"
	"github.com/keyward/keyward/internal/keymgmt"
	"github.com/keyward/keyward/internal/route"
)

// Surface serves Vault's keymgmt API.
type Surface struct {
	svc    *keymgmt.Service
	authz  authz.Authorizer
	log    *slog.Logger
	routes route.Table[handler, authz.Action]
	// MaxBodyBytes caps request bodies.
	MaxBodyBytes int64
	// Quorum, when set, is the quorum approval step (internal/api): called
	// after authorization for a protectable operation (today
	// OpKMSCredentialsChange) with the request's body; true means it
	// answered (the operation waits for approval).
	Quorum func(w http.ResponseWriter, r *http.Request, op string, p authz.Principal, body []byte) bool
}

// OpKMSCredentialsChange is the quorum operation of a KMS provider write
// that carries credentials (creating a provider or changing its
// credentials); its route's own operation stays KeyMgmtKMSWrite.
const OpKMSCredentialsChange = "KeyMgmtKMSCredentialsChange"

// New returns the surface over svc, authorizing with az.
func New(svc *keymgmt.Service, az authz.Authorizer, log *slog.Logger) *Surface {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Surface{svc: svc, authz: az, log: log, routes: routes(), MaxBodyBytes: 1 << 20}
}

type handler func(rq *request) error

type request struct {
	w      http.ResponseWriter
	r      *http.Request
	s      *Surface
	tenant string
	params map[string]string
	body   map[string]any
	raw    []byte
}

// Handles reports whether path belongs to this surface.
func Handles(path string) bool {
	return path == Prefix || strings.HasPrefix(path, Prefix+"/")
}

// Token returns the caller's token from Authorization: Bearer or
// X-Vault-Token (how Vault's clients send it), and whether there was one.
func Token(r *http.Request) (string, bool) {
	if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		if tok = strings.TrimSpace(tok); tok != "" {
			return tok, true
		}
	}
	if tok := strings.TrimSpace(r.Header.Get("X-Vault-Token")); tok != "" {
		return tok, true
	}
	return "", false
}

// Unauthenticated answers a request without a valid token: 401 with the
// challenge and Vault's body (Vault itself says 403 "permission denied";
// Keyward keeps its rule that a missing or bad token is a 401).
func (s *Surface) Unauthenticated(w http.ResponseWriter, r *http.Request, authority, resource, reason string) {
	ev := audit.EventFrom(r.Context())
	ev.Operation, ev.Reason, ev.ErrorCode = "KeyMgmt", reason, "Unauthorized"
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization=%q, resource=%q`, authority, resource))
	writeJSON(w, http.StatusUnauthorized, wireErrors{Errors: []string{"permission denied: a Keyward access token for " + resource + " is required (Authorization: Bearer or X-Vault-Token)"}})
}

// Sealed answers while Keyward is sealed: Vault's 503 "Vault is sealed".
func (s *Surface) Sealed(w http.ResponseWriter, r *http.Request) {
	audit.EventFrom(r.Context()).Operation = "KeyMgmt"
	s.writeErr(w, r, barrier.ErrSealed)
}

// Serve routes, authorizes and handles a request of an authenticated
// caller. tenant, objectID and appID come from the caller's token.
func (s *Surface) Serve(w http.ResponseWriter, r *http.Request, p authz.Principal) {
	ev := audit.EventFrom(r.Context())
	ev.Caller.TenantID, ev.Caller.ObjectID, ev.Caller.AppID = p.TenantID, p.ObjectID, p.AppID
	method := r.Method
	if method == http.MethodGet && r.URL.Query().Get("list") == "true" {
		method = methodList
	}
	path := strings.TrimPrefix(r.URL.EscapedPath(), Prefix)
	rt, params, allowed := s.routes.Match(method, path)
	if rt == nil {
		ev.Operation = "KeyMgmt"
		if allowed {
			s.writeErr(w, r, &apiError{status: http.StatusMethodNotAllowed, msg: "unsupported operation"})
			return
		}
		s.writeErr(w, r, &apiError{status: http.StatusNotFound, msg: "unsupported path"})
		return
	}
	ev.Operation = rt.Op
	if name := params["name"]; name != "" {
		ev.ObjectID = rt.Object + "/" + name
		if k := params["kms"]; k != "" {
			ev.ObjectID = "kms/" + k + "/key/" + name
		}
	} else if k := params["kms"]; k != "" {
		ev.ObjectID = "kms/" + k
	}
	if d := s.authz.Authorize(p, rt.Action, authz.Scope{TenantID: p.TenantID}); !d.Allowed {
		ev.Reason, ev.Result = d.Reason, audit.Denied
		s.writeErr(w, r, &apiError{status: http.StatusForbidden,
			msg: "permission denied: the caller lacks " + string(rt.Action) + " at the tenant scope"})
		return
	}
	rq := &request{w: w, r: r, s: s, tenant: p.TenantID, params: params}
	if r.Method == http.MethodPost || r.Method == http.MethodPut {
		if err := rq.decode(); err != nil {
			s.writeErr(w, r, err)
			return
		}
	}
	if _, creds := rq.body["credentials"]; creds && rt.Op == "KeyMgmtKMSWrite" && s.Quorum != nil && s.Quorum(w, r, OpKMSCredentialsChange, p, rq.raw) {
		return
	}
	if err := rt.Handle(rq); err != nil {
		s.writeErr(w, r, err)
	}
}

func (s *Surface) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	status, b, known := toWire(err)
	if !known {
		s.log.Error("keymgmt request failed", "request_id", audit.EventFrom(r.Context()).RequestID, "error", err)
	}
	ev := audit.EventFrom(r.Context())
	if ev.ErrorCode == "" {
		ev.ErrorCode = strconv.Itoa(status)
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "2")
	}
	writeJSON(w, status, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	raw, err := json.Marshal(v)
	if err != nil {
		status, raw = http.StatusInternalServerError, []byte(`{"errors":["internal error"]}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(raw)))
	w.WriteHeader(status)
	w.Write(raw)
}

// decode reads a JSON object body (an empty body is an empty object).
func (rq *request) decode() error {
	raw, err := io.ReadAll(io.LimitReader(rq.r.Body, rq.s.MaxBodyBytes+1))
	if err != nil {
		return badRequest("failed to read the request body")
	}
	if int64(len(raw)) > rq.s.MaxBodyBytes {
		return &apiError{status: http.StatusRequestEntityTooLarge, msg: "request body too large"}
	}
	b, err := parseBody(raw)
	if err != nil {
		return err
	}
	rq.body, rq.raw = b, raw
	return nil
}

// parseBody parses a request body: empty, or one JSON object.
func parseBody(raw []byte) (map[string]any, error) {
	if t := strings.TrimSpace(string(raw)); t == "" || t == "null" {
		// Vault's client sends "null" for a write without data.
		return map[string]any{}, nil
	}
	if p := jsonbody.Check(raw); p != nil { // encoding/json would replace it with U+FFFD
		if p.Surrogate {
			return nil, badRequest("failed to parse JSON input: an unpaired UTF-16 surrogate escape at byte %d", p.Offset)
		}
		return nil, badRequest("failed to parse JSON input: invalid UTF-8 at byte %d", p.Offset)
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var b map[string]any
	if err := dec.Decode(&b); err != nil || b == nil {
		return nil, badRequest("failed to parse JSON input: the body must be a JSON object")
	}
	if dec.More() {
		return nil, badRequest("failed to parse JSON input: trailing data after the object")
	}
	return b, nil
}

// reply writes Vault's response envelope around data (204 when nil).
func (rq *request) reply(data any) error {
	if data == nil {
		rq.w.WriteHeader(http.StatusNoContent)
		return nil
	}
	writeJSON(rq.w, http.StatusOK, map[string]any{
		"request_id": uuid.NewString(), "lease_id": "", "renewable": false, "lease_duration": 0,
		"data": data, "wrap_info": nil, "warnings": nil, "auth": nil,
	})
	return nil
}

func (rq *request) list(names []string, err error) error {
	if err != nil {
		return err
	}
	if len(names) == 0 {
		// Vault: an empty list is a 404 (its client returns no secret).
		writeJSON(rq.w, http.StatusNotFound, wireErrors{Errors: []string{}})
		return nil
	}
	return rq.reply(map[string]any{"keys": names})
}

// Field readers: Vault's CLI sends every value as a string
// (`vault write … min_enabled_version=2`), its API clients send JSON types.

func (rq *request) str(name string) (string, bool, error) {
	v, ok := rq.body[name]
	if !ok || v == nil {
		return "", false, nil
	}
	s, isStr := v.(string)
	if !isStr {
		return "", true, badRequest("%s must be a string", name)
	}
	return s, true, nil
}

func (rq *request) integer(name string) (*int, error) {
	v, ok := rq.body[name]
	if !ok || v == nil {
		return nil, nil
	}
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = x
	default:
		return nil, badRequest("%s must be an integer", name)
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 || n > 1<<30 {
		return nil, badRequest("%s must be a non-negative integer", name)
	}
	return &n, nil
}

func (rq *request) boolean(name string) (*bool, error) {
	v, ok := rq.body[name]
	if !ok || v == nil {
		return nil, nil
	}
	switch x := v.(type) {
	case bool:
		return &x, nil
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(x))
		if err != nil {
			return nil, badRequest("%s must be a boolean", name)
		}
		return &b, nil
	}
	return nil, badRequest("%s must be a boolean", name)
}

// strs reads a string or a list of strings.
func (rq *request) strs(name string) ([]string, error) {
	v, ok := rq.body[name]
	if !ok || v == nil {
		return nil, nil
	}
	switch x := v.(type) {
	case string:
		return []string{x}, nil
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, badRequest("%s must be a string or a list of strings", name)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, badRequest("%s must be a string or a list of strings", name)
}

// kv reads a map of strings: a JSON object, or (Vault's CLI) a list of
// "key=value" strings or one such string.
func (rq *request) kv(name string) (map[string]string, error) {
	v, ok := rq.body[name]
	if !ok || v == nil {
		return nil, nil
	}
	out := map[string]string{}
	add := func(s string) error {
		k, val, ok := strings.Cut(s, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return badRequest("%s must be a map or a list of key=value strings", name)
		}
		out[strings.TrimSpace(k)] = val
		return nil
	}
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, badRequest("%s.%s must be a string", name, k)
			}
			out[k] = s
		}
	case string:
		for _, part := range strings.Split(x, ",") {
			if err := add(part); err != nil {
				return nil, err
			}
		}
	case []any:
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, badRequest("%s must be a map or a list of key=value strings", name)
			}
			if err := add(s); err != nil {
				return nil, err
			}
		}
	default:
		return nil, badRequest("%s must be a map or a list of key=value strings", name)
	}
	return out, nil
}

// --- keys ---

func keyData(k *keymgmt.Key) map[string]any {
	versions := map[string]any{}
	for _, v := range k.VersionNumbers() {
		ver := map[string]any{"creation_time": k.Versions[v].Created.Format(time.RFC3339Nano)}
		if pub := k.PublicPEM(v); pub != "" {
			ver["public_key"] = pub
		}
		versions[strconv.Itoa(v)] = ver
	}
	return map[string]any{
		"name": k.Name, "type": k.Type, "deletion_allowed": k.DeletionAllowed,
		"latest_version": k.LatestVersion, "min_enabled_version": k.MinEnabledVersion,
		"versions": versions,
	}
}

func listKeys(rq *request) error {
	return rq.list(rq.s.svc.ListKeys(rq.r.Context(), rq.tenant))
}

func getKey(rq *request) error {
	k, err := rq.s.svc.GetKey(rq.r.Context(), rq.tenant, rq.params["name"])
	if err != nil {
		return err
	}
	return rq.reply(keyData(k))
}

// writeKey creates the key, or updates an existing one's
// min_enabled_version and deletion_allowed (Vault's one path for both).
func writeKey(rq *request) error {
	name := rq.params["name"]
	typ, hasType, err := rq.str("type")
	if err != nil {
		return err
	}
	minV, err := rq.integer("min_enabled_version")
	if err != nil {
		return err
	}
	del, err := rq.boolean("deletion_allowed")
	if err != nil {
		return err
	}
	ctx := rq.r.Context()
	existing, err := rq.s.svc.GetKey(ctx, rq.tenant, name)
	switch {
	case err == nil:
		if hasType && typ != existing.Type {
			return badRequest("the type of an existing key cannot be changed")
		}
		if minV == nil && del == nil {
			return rq.reply(nil)
		}
		_, err = rq.s.svc.UpdateKey(ctx, rq.tenant, name, keymgmt.KeyUpdate{MinEnabledVersion: minV, DeletionAllowed: del})
		if err != nil {
			return err
		}
		return rq.reply(nil)
	case !isNotFound(err):
		return err
	}
	if !keymgmt.ValidName(name) {
		return badRequest("%s", reasons[keymgmt.ReasonInvalidName])
	}
	if hasType && !keymgmt.ValidType(typ) {
		return badRequest("%s", reasons[keymgmt.ReasonInvalidType])
	}
	if minV != nil && *minV > 1 {
		return badRequest("%s", reasons[keymgmt.ReasonInvalidMinVersion])
	}
	if _, err := rq.s.svc.CreateKey(ctx, rq.tenant, name, typ); err != nil {
		return err
	}
	if del != nil && *del {
		if _, err := rq.s.svc.UpdateKey(ctx, rq.tenant, name, keymgmt.KeyUpdate{DeletionAllowed: del}); err != nil {
			return err
		}
	}
	return rq.reply(nil)
}

func rotateKey(rq *request) error {
	if _, err := rq.s.svc.RotateKey(rq.r.Context(), rq.tenant, rq.params["name"]); err != nil {
		return err
	}
	return rq.reply(nil)
}

func deleteKey(rq *request) error {
	if err := rq.s.svc.DeleteKey(rq.r.Context(), rq.tenant, rq.params["name"]); err != nil {
		return err
	}
	return rq.reply(nil)
}

func listKeyKMS(rq *request) error {
	return rq.list(rq.s.svc.KeyKMS(rq.r.Context(), rq.tenant, rq.params["name"]))
}

// --- KMS providers ---

func listKMS(rq *request) error {
	return rq.list(rq.s.svc.ListKMS(rq.r.Context(), rq.tenant))
}

func getKMS(rq *request) error {
	k, err := rq.s.svc.GetKMS(rq.r.Context(), rq.tenant, rq.params["kms"])
	if err != nil {
		return err
	}
	// Credentials are write-only: never shown, not even their names' values.
	return rq.reply(map[string]any{"name": k.Name, "provider": k.Provider, "key_collection": k.KeyCollection})
}

func writeKMS(rq *request) error {
	prov, _, err := rq.str("provider")
	if err != nil {
		return err
	}
	coll, _, err := rq.str("key_collection")
	if err != nil {
		return err
	}
	creds, err := rq.kv("credentials")
	if err != nil {
		return err
	}
	_, err = rq.s.svc.PutKMS(rq.r.Context(), rq.tenant, keymgmt.KMS{Name: rq.params["kms"], Provider: prov, KeyCollection: coll, Credentials: creds})
	if err != nil {
		return err
	}
	return rq.reply(nil)
}

func deleteKMS(rq *request) error {
	if err := rq.s.svc.DeleteKMS(rq.r.Context(), rq.tenant, rq.params["kms"]); err != nil {
		return err
	}
	return rq.reply(nil)
}

// --- distributions ---

func distData(d *keymgmt.Distribution) map[string]any {
	versions := map[string]any{}
	vs := make([]int, 0, len(d.Versions))
	for v := range d.Versions {
		vs = append(vs, v)
	}
	sort.Ints(vs)
	for _, v := range vs {
		versions[strconv.Itoa(v)] = d.Versions[v]
	}
	out := map[string]any{
		"name": d.Key, "purpose": d.Purpose, "protection": d.Protection,
		"distribution_time": d.Created.Format(time.RFC3339Nano), "versions": versions,
		// Keyward's additions: the reconciliation state.
		"state": d.State, "last_error": d.LastError, "findings": d.Findings,
	}
	if !d.LastChecked.IsZero() {
		out["last_checked"] = d.LastChecked.Format(time.RFC3339Nano)
	}
	if !d.NextAttempt.IsZero() {
		out["next_attempt"] = d.NextAttempt.Format(time.RFC3339Nano)
	}
	if out["findings"] == nil {
		out["findings"] = []string{}
	}
	return out
}

func listDistributions(rq *request) error {
	return rq.list(rq.s.svc.ListDistributions(rq.r.Context(), rq.tenant, rq.params["kms"]))
}

func getDistribution(rq *request) error {
	d, err := rq.s.svc.GetDistribution(rq.r.Context(), rq.tenant, rq.params["kms"], rq.params["name"])
	if err != nil {
		return err
	}
	return rq.reply(distData(d))
}

func distribute(rq *request) error {
	purpose, err := rq.strs("purpose")
	if err != nil {
		return err
	}
	if len(purpose) == 0 {
		return badRequest("purpose is required")
	}
	protection, _, err := rq.str("protection")
	if err != nil {
		return err
	}
	_, err = rq.s.svc.Distribute(rq.r.Context(), rq.tenant, rq.params["kms"], rq.params["name"], purpose, protection)
	if err != nil {
		return err
	}
	return rq.reply(nil)
}

func removeDistribution(rq *request) error {
	if err := rq.s.svc.RemoveDistribution(rq.r.Context(), rq.tenant, rq.params["kms"], rq.params["name"]); err != nil {
		return err
	}
	return rq.reply(nil)
}

func isNotFound(err error) bool { return errs.KindOf(err) == errs.NotFound }
