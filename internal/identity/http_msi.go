package identity

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/audit"
)

// The managed-identity endpoint on the wire (msi.go decides).

// msiError writes the error shape managed-identity clients read: HTTP 400
// (not 404, which Go's IMDS client retries for 25 seconds) with an OAuth
// error body; the status comes from the error's kind (oauthStatus).
func msiError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// serveMSI answers every managed-identity request shape on one handler
// (IDENTITY.md §3): App Service (GET, X-IDENTITY-HEADER), Azure ML (GET,
// secret header, clientid), Service Fabric's header name, IMDS (GET,
// Metadata: true) and Cloud Shell (POST form, Metadata: true).
func (a *Authority) serveMSI(w http.ResponseWriter, r *http.Request, resources []string) {
	ctx := r.Context()
	ev := audit.EventFrom(ctx)
	ev.Service, ev.Operation = "identity", "ManagedIdentityToken"
	if after, ok := a.guard.Load().allowSource(ev.Caller.IP); !ok {
		// The token endpoint's per-source bucket (tokenlimits.go); IMDS
		// also answers floods with 429.
		ev.Reason = "token requests from this source throttled"
		w.Header().Set("Retry-After", strconv.FormatInt(int64((after+time.Second-1)/time.Second), 10))
		msiError(w, http.StatusTooManyRequests, "temporarily_unavailable", "Too many token requests from this source.")
		return
	}
	q := r.URL.Query()
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxTokenRequest)
		if err := r.ParseForm(); err != nil {
			msiError(w, http.StatusBadRequest, "invalid_request", "The request body could not be parsed.")
			return
		}
		for k, v := range r.PostForm {
			if q.Get(k) == "" {
				q[k] = v
			}
		}
	} else if r.Method != http.MethodGet {
		msiError(w, http.StatusMethodNotAllowed, "invalid_request", "Use GET (or POST for the Cloud Shell shape).")
		return
	}
	secret := r.Header.Get("X-IDENTITY-HEADER")
	if secret == "" {
		secret = r.Header.Get("Secret") // Azure ML and Service Fabric
	}
	t, err := a.msiIssue(ctx, msiRequest{q: q, secret: secret, metadata: strings.EqualFold(r.Header.Get("Metadata"), "true")}, resources)
	if err != nil {
		var te *tokenError
		if !errors.As(err, &te) {
			te = errMSITransient
		}
		msiError(w, oauthStatus(te.kind), te.code, te.desc)
		return
	}
	now := a.clock.Now()
	secs := strconv.FormatInt(int64(t.expires.Sub(now).Seconds()), 10)
	resp := map[string]string{
		"access_token": t.token, "client_id": t.identity.AppID, "expires_in": secs, "ext_expires_in": secs,
		"expires_on": strconv.FormatInt(t.expires.Unix(), 10), "not_before": strconv.FormatInt(now.Unix(), 10),
		"resource": t.audience, "token_type": "Bearer",
	}
	if v := firstOf(q, "mi_res_id", "msi_res_id"); v != "" {
		resp["msi_res_id"] = v // Azure Arc clients check the echo
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, resp)
}
