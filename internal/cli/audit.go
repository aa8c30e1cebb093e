package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// AuditUsage fetches a vault's key-usage report from the server's audit
// report API (GET {vault}/providers/Keyward.Audit/usage, docs/CONFIG.md),
// as the principal of --dev-json, the AZURE_* variables or `keyward
// login`: `keyward audit report --vault NAME` without log files. The
// answer's "value" is returned as the server sent it.
func AuditUsage(ctx context.Context, o IO, devPath, vault, group string, since time.Time) (json.RawMessage, error) {
	s, err := resolve(ctx, o, cmp.Or(devPath, o.Getenv("KEYWARD_DEV_JSON")))
	if err != nil {
		return nil, err
	}
	if s.p.ManagementURL == "" {
		return nil, fmt.Errorf("the profile has no management URL: the audit report API is on the management plane")
	}
	if group == "" {
		c, err := s.vaultsClient()
		if err != nil {
			return nil, err
		}
		if group, err = s.findGroup(ctx, c, vault); err != nil {
			return nil, err
		}
	}
	q := url.Values{"api-version": {"2026-01-01"}}
	if !since.IsZero() {
		q.Set("from", since.UTC().Format(time.RFC3339))
	}
	u := strings.TrimRight(s.p.ManagementURL, "/") + "/subscriptions/" + url.PathEscape(s.p.SubscriptionID) + "/resourceGroups/" + url.PathEscape(group) +
		"/providers/Microsoft.KeyVault/vaults/" + url.PathEscape(vault) + "/providers/Keyward.Audit/usage?" + q.Encode()
	tok, err := s.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{strings.TrimRight(cmp.Or(s.p.ManagementResource, s.p.ManagementURL), "/") + "/.default"}})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	resp, err := s.transport.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	var body struct {
		Value json.RawMessage `json:"value"`
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, fmt.Errorf("the audit report API answered %s", resp.Status)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("(%s) %s", body.Error.Code, body.Error.Message)
	}
	return body.Value, nil
}
