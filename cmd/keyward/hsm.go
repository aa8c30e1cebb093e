package main

import (
	"cmp"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/securitydomain"
	"github.com/spf13/cobra"
)

// `keyward hsm security-domain download|upload`: the client side of a
// managed HSM's security domain, as `az keyvault security-domain` does it.
// Upload runs on the custodians' machine: their private keys never reach
// Keyward (docs/MANAGED-HSM.md).

type hsmClient struct {
	hsmURL, address, authority, caFile, devJSON string
	tenant, clientID, secretFile                string
	secret                                      string // the client secret, in memory only
	getenv                                      func(string) string
	http                                        *http.Client
}

func newHSMCmd(getenv func(string) string, stdout io.Writer) *cobra.Command {
	hc := &hsmClient{getenv: getenv}
	var secret string
	cmd := &cobra.Command{
		Use:   "hsm",
		Short: "Managed HSM pools: the security domain (client side)",
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if hc.devJSON != "" {
				raw, err := os.ReadFile(hc.devJSON)
				if err != nil {
					return err
				}
				var d struct {
					TenantID      string `json:"tenant_id"`
					ClientID      string `json:"client_id"`
					ClientSecret  string `json:"client_secret"`
					AuthorityHost string `json:"authority_host"`
					CAFile        string `json:"ca_file"`
					Listen        string `json:"listen"`
					ManagedHSMURL string `json:"managed_hsm_url"`
				}
				if err := json.Unmarshal(raw, &d); err != nil {
					return fmt.Errorf("%s: %w", hc.devJSON, err)
				}
				hc.tenant, hc.clientID = cmp.Or(hc.tenant, d.TenantID), cmp.Or(hc.clientID, d.ClientID)
				hc.authority, hc.caFile = cmp.Or(hc.authority, d.AuthorityHost), cmp.Or(hc.caFile, d.CAFile)
				hc.hsmURL = cmp.Or(hc.hsmURL, d.ManagedHSMURL)
				if hc.address == "" && d.Listen != "" {
					hc.address = "https://" + d.Listen
				}
				secret = d.ClientSecret
			}
			if hc.secretFile != "" {
				b, err := os.ReadFile(hc.secretFile)
				if err != nil {
					return err
				}
				secret = strings.TrimSpace(string(b))
			}
			secret = cmp.Or(getenv("KEYWARD_CLIENT_SECRET"), secret)
			hc.tenant, hc.clientID = cmp.Or(hc.tenant, getenv("KEYWARD_TENANT_ID")), cmp.Or(hc.clientID, getenv("KEYWARD_CLIENT_ID"))
			if hc.hsmURL == "" || hc.tenant == "" || hc.clientID == "" || secret == "" {
				return errors.New("needs --hsm-url and credentials: --tenant, --client-id and KEYWARD_CLIENT_SECRET (or --client-secret-file), or --dev-json")
			}
			hc.hsmURL = strings.TrimRight(hc.hsmURL, "/")
			tlsCfg, err := clientTLS(hc.caFile, getenv)
			if err != nil {
				return err
			}
			tr := &http.Transport{TLSClientConfig: tlsCfg}
			if hc.address != "" { // every name is dialled at --address
				u, err := url.Parse(hc.address)
				if err != nil || u.Host == "" {
					return fmt.Errorf("address %q is not a URL", hc.address)
				}
				connect := u.Host
				if u.Port() == "" {
					connect += ":443"
				}
				d := &net.Dialer{Timeout: 10 * time.Second}
				tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
					return d.DialContext(ctx, network, connect)
				}
			}
			hc.http = &http.Client{Timeout: 60 * time.Second, Transport: tr}
			hc.secret = secret
			return nil
		},
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&hc.hsmURL, "hsm-url", "", "the pool's URL, https://{name}.managedhsm.{suffix}[:port]/")
	pf.StringVar(&hc.address, "address", "", "connect every request here (https://host:port) instead of resolving names")
	pf.StringVar(&hc.authority, "authority", "", "token service URL (default: --address)")
	pf.StringVar(&hc.caFile, "ca-cert", "", "CA certificate to trust (env KEYWARD_CACERT)")
	pf.StringVar(&hc.devJSON, "dev-json", "", "read the pool URL, address, CA and credentials from a dev server's dev.json")
	pf.StringVar(&hc.tenant, "tenant", "", "tenant ID (env KEYWARD_TENANT_ID)")
	pf.StringVar(&hc.clientID, "client-id", "", "client ID of a pool administrator (env KEYWARD_CLIENT_ID)")
	pf.StringVar(&hc.secretFile, "client-secret-file", "", "file holding the client secret (or env KEYWARD_CLIENT_SECRET)")

	sd := &cobra.Command{Use: "security-domain", Short: "Download (activate) or upload (recover) a pool's security domain"}
	var certs []string
	var quorum int
	var out string
	download := &cobra.Command{
		Use:   "download",
		Short: "Activate a new pool: its security domain, split among 3 to 10 custodian certificates",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var jwks []map[string]any
			for _, f := range certs {
				der, err := readPEM(f, "CERTIFICATE")
				if err != nil {
					return err
				}
				jwks = append(jwks, map[string]any{"kty": "RSA", "x5c": []string{base64.StdEncoding.EncodeToString(der)}, "use": "enc", "alg": "RSA-OAEP-256"})
			}
			var res struct{ Value string }
			if err := hc.call(cmd.Context(), http.MethodPost, "/securitydomain/download", map[string]any{"certificates": jwks, "required": quorum}, &res); err != nil {
				return err
			}
			if err := os.WriteFile(out, []byte(res.Value), 0o600); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "The pool is activated. Its security domain is in %s: keep it, and the custodians' private keys, apart.\n", out)
			return nil
		},
	}
	download.Flags().StringSliceVar(&certs, "sd-wrapping-keys", nil, "custodian certificates (PEM files), 3 to 10")
	download.Flags().IntVar(&quorum, "sd-quorum", 2, "how many custodians are needed to recover")
	download.Flags().StringVar(&out, "security-domain-file", "", "where to write the security domain")
	download.MarkFlagRequired("sd-wrapping-keys")
	download.MarkFlagRequired("security-domain-file")

	var sdFile string
	var privFiles []string
	upload := &cobra.Command{
		Use:   "upload",
		Short: "Activate a pool with another pool's security domain (custodians' private keys stay here)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			raw, err := os.ReadFile(sdFile)
			if err != nil {
				return err
			}
			doc, err := securitydomain.Parse(raw)
			if err != nil {
				return fmt.Errorf("%s: %w", sdFile, err)
			}
			var privs []*rsa.PrivateKey
			for _, f := range privFiles {
				der, err := readPEM(f, "PRIVATE KEY")
				if err != nil {
					return err
				}
				k, err := x509.ParsePKCS8PrivateKey(der)
				rk, ok := k.(*rsa.PrivateKey)
				if err != nil || !ok {
					return fmt.Errorf("%s: not a PKCS #8 RSA private key", f)
				}
				privs = append(privs, rk)
			}
			secret, err := securitydomain.Recover(doc, privs)
			if err != nil {
				return err
			}
			defer clear(secret)
			var tk struct {
				TransferKey struct{ N, E string } `json:"transfer_key"`
			}
			if err := hc.call(cmd.Context(), http.MethodGet, "/securitydomain/upload", nil, &tk); err != nil {
				return err
			}
			n, err1 := base64.RawURLEncoding.DecodeString(tk.TransferKey.N)
			e, err2 := base64.RawURLEncoding.DecodeString(tk.TransferKey.E)
			if err1 != nil || err2 != nil || len(n) < 256 || len(e) == 0 || len(e) > 4 {
				return errors.New("the pool's transfer key is not an RSA key")
			}
			up, err := securitydomain.ForUpload(secret, &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}, "")
			if err != nil {
				return err
			}
			upRaw, err := json.Marshal(up)
			if err != nil {
				return err
			}
			var st struct{ Status string }
			if err := hc.call(cmd.Context(), http.MethodPost, "/securitydomain/upload", map[string]string{"value": string(upRaw)}, &st); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "Security domain uploaded: %s. Restore the old pool's full backup onto this pool next.\n", st.Status)
			return nil
		},
	}
	upload.Flags().StringVar(&sdFile, "sd-file", "", "the security domain a download wrote")
	upload.Flags().StringSliceVar(&privFiles, "sd-wrapping-keys", nil, "custodians' private keys (PKCS #8 PEM), at least the quorum")
	upload.MarkFlagRequired("sd-file")
	upload.MarkFlagRequired("sd-wrapping-keys")
	sd.AddCommand(download, upload)
	cmd.AddCommand(sd)
	return cmd
}

func readPEM(file, typ string) ([]byte, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(raw)
	if b == nil || b.Type != typ {
		return nil, fmt.Errorf("%s: no PEM %s", file, typ)
	}
	return b.Bytes, nil
}

// token gets a token for the pools' audience, https://managedhsm.{suffix}[:port].
func (hc *hsmClient) token(ctx context.Context) (string, error) {
	u, err := url.Parse(hc.hsmURL)
	if err != nil || !strings.Contains(u.Host, ".") {
		return "", fmt.Errorf("--hsm-url %q is not a pool URL", hc.hsmURL)
	}
	resource := "https://" + u.Host[strings.Index(u.Host, ".")+1:]
	authority := strings.TrimRight(cmp.Or(hc.authority, hc.address), "/")
	return clientCredentialsToken(ctx, hc.http, authority, hc.tenant, hc.clientID, hc.secret, resource)
}

func (hc *hsmClient) call(ctx context.Context, method, path string, in, out any) error {
	tok, err := hc.token(ctx)
	if err != nil {
		return err
	}
	return callJSON(ctx, hc.http, method, hc.hsmURL+path+"?api-version=7.5", path, tok, in, out)
}
