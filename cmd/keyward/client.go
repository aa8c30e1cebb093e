package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// clientTLS is how the CLI's clients (operator, access) connect to a
// Keyward server: the system roots plus the PEM certificates in caFile or,
// when that is empty, $KEYWARD_CACERT; TLS 1.2 or later.
func clientTLS(caFile string, getenv func(string) string) (*tls.Config, error) {
	roots, err := pool(cmp.Or(caFile, getenv("KEYWARD_CACERT")))
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, nil
}

// callJSON sends in (when not nil) as JSON with a bearer token (when not
// empty) and decodes a JSON reply into out. A status of 300 or more is an
// error: the Azure-shaped {"error":{code,message}} when there is one, else
// the method, path (the URL without host and query) and status.
func callJSON(ctx context.Context, c *http.Client, method, url, path, token string, in, out any) error {
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error.Code != "" {
			return fmt.Errorf("%s: %s", e.Error.Code, e.Error.Message)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out != nil && len(bytes.TrimSpace(raw)) > 0 {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// clientCredentialsToken asks the token service at authority (its base
// URL) for a token of resource with the OAuth client credentials grant.
// Errors name the status and the Entra error code and description, never
// the secret.
func clientCredentialsToken(ctx context.Context, c *http.Client, authority, tenant, clientID, secret, resource string) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret},
		"scope": {strings.TrimSuffix(resource, "/") + "/.default"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(authority, "/")+"/"+url.PathEscape(tenant)+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token endpoint: %s %s %s", resp.Status, out.Error, out.Description)
	}
	return out.AccessToken, nil
}
