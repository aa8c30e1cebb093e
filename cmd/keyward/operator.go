package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// operatorClient talks to a Keyward server's /sys endpoints.
type operatorClient struct {
	addr   string
	http   *http.Client
	getenv func(string) string
	// credentials for seal and key rotation
	tenant, clientID, secretFile string
}

func newOperatorCmd(getenv func(string) string, stdin io.Reader, stdout io.Writer) *cobra.Command {
	oc := &operatorClient{getenv: getenv}
	var caFile string
	cmd := &cobra.Command{
		Use:   "operator",
		Short: "Initialize, unseal, seal and inspect a Keyward server",
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			oc.addr = strings.TrimRight(cmp.Or(oc.addr, getenv("KEYWARD_ADDR"), "https://localhost:8443"), "/")
			tlsCfg, err := clientTLS(caFile, getenv)
			if err != nil {
				return err
			}
			oc.http = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
			return nil
		},
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&oc.addr, "address", "", "Keyward URL (env KEYWARD_ADDR, default https://localhost:8443)")
	pf.StringVar(&caFile, "ca-cert", "", "CA certificate to trust (env KEYWARD_CACERT)")

	var shares, threshold int
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Initialize a new Keyward: create the root key and print the unseal shares once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct {
				KeysBase64    []string `json:"keys_base64"`
				Threshold     int      `json:"threshold"`
				TenantID      string   `json:"tenant_id"`
				ClientID      string   `json:"client_id"`
				ClientSecret  string   `json:"client_secret"`
				Vault         string   `json:"vault"`
				Subscription  string   `json:"subscription_id"`
				ResourceGroup string   `json:"resource_group"`
			}
			if err := oc.call(cmd.Context(), http.MethodPost, "/sys/init", "", map[string]int{"secret_shares": shares, "secret_threshold": threshold}, &out); err != nil {
				return err
			}
			var st sealStatus
			_ = oc.call(cmd.Context(), http.MethodGet, "/sys/seal-status", "", nil, &st)
			label, next := "Unseal Key", fmt.Sprintf("Keyward is sealed; unseal it with %d shares (keyward operator unseal).", out.Threshold)
			if st.Type == "pkcs11" {
				label = "Recovery Key"
				next = fmt.Sprintf("Keyward is sealed by its HSM and unseals itself. The shares are RECOVERY\nshares: %d of them authorize keyward operator seal-migrate; they cannot\ndecrypt anything.", out.Threshold)
			}
			for i, k := range out.KeysBase64 {
				fmt.Fprintf(stdout, "%s %d: %s\n", label, i+1, k)
			}
			fmt.Fprintf(stdout, `
Keyward initialized with %d key shares and a key threshold of %d. These
shares are shown once and stored nowhere: give each to a different person.
%s

A first tenant, subscription and administrator were created:
    Tenant ID:        %s
    Subscription ID:  %s
    Resource group:   %s
    Vault:            %s
    Admin client ID:  %s
    Admin secret:     %s
Store the admin secret now: it is shown once and only its hash is kept.
`, len(out.KeysBase64), out.Threshold, next, out.TenantID, out.Subscription, out.ResourceGroup, out.Vault, out.ClientID, out.ClientSecret)
			return nil
		},
	}
	initCmd.Flags().IntVar(&shares, "shares", 5, "number of unseal key shares")
	initCmd.Flags().IntVar(&threshold, "threshold", 3, "number of shares needed to unseal")

	var reset bool
	unsealCmd := &cobra.Command{
		Use:   "unseal [SHARE]",
		Short: "Give one unseal share (prompted for when not an argument)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{"reset": reset}
			if !reset {
				share := ""
				if len(args) == 1 {
					share = args[0]
				} else {
					var err error
					if share, err = readSecret(stdin, stdout, "Unseal share: "); err != nil {
						return err
					}
				}
				body["key"] = share
			}
			var st sealStatus
			if err := oc.call(cmd.Context(), http.MethodPost, "/sys/unseal", "", body, &st); err != nil {
				return err
			}
			st.print(stdout)
			return nil
		},
	}
	unsealCmd.Flags().BoolVar(&reset, "reset", false, "discard the shares given so far")

	statusCmd := &cobra.Command{
		Use:   "status",
		Short: "Show whether Keyward is initialized and sealed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st sealStatus
			if err := oc.call(cmd.Context(), http.MethodGet, "/sys/seal-status", "", nil, &st); err != nil {
				return err
			}
			st.print(stdout)
			if st.Sealed {
				return errSealed
			}
			return nil
		},
	}

	sealCmd := &cobra.Command{
		Use:   "seal",
		Short: "Seal Keyward: it forgets its keys and refuses every request until unsealed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tok, err := oc.token(cmd.Context())
			if err != nil {
				return err
			}
			// Under a quorum policy (docs/QUORUM.md) the answer is 202 with
			// an ApprovalRequired error and the approval request: not sealed.
			var pending struct {
				Error    struct{ Code, Message string } `json:"error"`
				Approval struct {
					ID string `json:"id"`
				} `json:"approval"`
			}
			if err := oc.call(cmd.Context(), http.MethodPost, "/sys/seal", tok, nil, &pending); err != nil {
				return err
			}
			if pending.Error.Code != "" {
				return fmt.Errorf("not sealed: %s: %s", pending.Error.Code, pending.Error.Message)
			}
			fmt.Fprintln(stdout, "Keyward is sealed.")
			return nil
		},
	}
	rotateCmd := &cobra.Command{
		Use:   "rotate-signing-key",
		Short: "Make a new token signing key active (the old one keeps verifying for a day)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tok, err := oc.token(cmd.Context())
			if err != nil {
				return err
			}
			var out struct {
				Kid string `json:"kid"`
			}
			if err := oc.call(cmd.Context(), http.MethodPost, "/sys/rotate-signing-key", tok, nil, &out); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "New signing key: %s\n", out.Kid)
			return nil
		},
	}
	var migrateTo string
	migrateSealCmd := &cobra.Command{
		Use:   "seal-migrate --to pkcs11|shamir [SHARE...]",
		Short: "Move the seal between Shamir shares and the HSM (pkcs11) while Keyward serves",
		Long: `Move the seal between Shamir shares and the HSM (the pkcs11 seal, docs/HSM.md).
The root key stays the same: nothing is re-encrypted and Keyward keeps serving.

--to pkcs11: give a threshold of the current unseal shares; they become the
recovery shares, and Keyward unseals itself with its HSM from then on.
--to shamir: give a threshold of the recovery shares; they become the unseal
shares again. Shares are arguments, or read from standard input one per line.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			keys := args
			if len(keys) == 0 {
				raw, err := io.ReadAll(stdin)
				if err != nil {
					return err
				}
				keys = strings.Fields(string(raw))
			}
			tok, err := oc.token(cmd.Context())
			if err != nil {
				return err
			}
			var st sealStatus
			if err := oc.call(cmd.Context(), http.MethodPost, "/sys/seal-migrate", tok, map[string]any{"to": migrateTo, "keys": keys}, &st); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "The seal is now %s.\n", migrateTo)
			st.print(stdout)
			return nil
		},
	}
	migrateSealCmd.Flags().StringVar(&migrateTo, "to", "", "pkcs11 or shamir")
	_ = migrateSealCmd.MarkFlagRequired("to")
	sinksCmd := &cobra.Command{
		Use:   "audit-sinks",
		Short: "List the audit sinks Keyward knows (recorded at unseal) and those it is configured with",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tok, err := oc.token(cmd.Context())
			if err != nil {
				return err
			}
			var out struct {
				Known, Configured       []string
				RemovalRequiresApproval bool
			}
			if err := oc.call(cmd.Context(), http.MethodGet, "/sys/audit/sinks", tok, nil, &out); err != nil {
				return err
			}
			for _, id := range out.Known {
				fmt.Fprintf(stdout, "known       %s\n", id)
			}
			for _, id := range out.Configured {
				fmt.Fprintf(stdout, "configured  %s\n", id)
			}
			fmt.Fprintf(stdout, "Removal requires approval: %t\n", out.RemovalRequiresApproval)
			return nil
		},
	}
	sinkRemoveCmd := &cobra.Command{
		Use:   "audit-sink-remove IDENTITY",
		Short: "Ask for the permission to remove a known audit sink (under a quorum policy: an approval request)",
		Long: `Ask for the permission to remove a known audit sink (its identity as
'keyward operator audit-sinks' lists it). Under an operator tenant policy
naming AuditSinkRemove this creates a tenant-level approval request
(approvers: keyward approval approve ID --tenant-level); once approved, remove
the sink from the configuration and restart: the unseal uses the approval once.
Without such a policy no permission is needed (docs/QUORUM.md).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tok, err := oc.token(cmd.Context())
			if err != nil {
				return err
			}
			var out struct {
				Error    struct{ Code, Message string } `json:"error"`
				Approval struct {
					ID string `json:"id"`
				} `json:"approval"`
				Message string `json:"message"`
			}
			if err := oc.call(cmd.Context(), http.MethodPost, "/sys/audit/sinks/remove", tok, map[string]string{"sink": args[0]}, &out); err != nil {
				return err
			}
			if out.Error.Code != "" {
				fmt.Fprintf(stdout, "Approval request %s: %s\n", out.Approval.ID, out.Error.Message)
				return nil
			}
			fmt.Fprintln(stdout, out.Message)
			return nil
		},
	}
	for _, c := range []*cobra.Command{sealCmd, rotateCmd, migrateSealCmd, sinksCmd, sinkRemoveCmd} {
		c.Flags().StringVar(&oc.tenant, "tenant", "", "tenant ID (env KEYWARD_TENANT_ID)")
		c.Flags().StringVar(&oc.clientID, "client-id", "", "administrator client ID (env KEYWARD_CLIENT_ID)")
		c.Flags().StringVar(&oc.secretFile, "client-secret-file", "", "file holding the client secret (or env KEYWARD_CLIENT_SECRET)")
	}
	cmd.AddCommand(initCmd, unsealCmd, statusCmd, sealCmd, rotateCmd, migrateSealCmd, sinksCmd, sinkRemoveCmd, newMigrateCmd(getenv, stdout))
	return cmd
}

var errSealed = errors.New("sealed")

type sealStatus struct {
	Type               string `json:"type"`
	Initialized        bool   `json:"initialized"`
	Sealed             bool   `json:"sealed"`
	T                  int    `json:"t"`
	N                  int    `json:"n"`
	Progress           int    `json:"progress"`
	ManagementResource string `json:"management_resource"`
}

func (s sealStatus) print(w io.Writer) {
	fmt.Fprintf(w, "Initialized:  %t\nSealed:       %t\n", s.Initialized, s.Sealed)
	if s.Initialized {
		fmt.Fprintf(w, "Seal type:    %s\nShares:       %d\nThreshold:    %d\nProgress:     %d/%d\n", s.Type, s.N, s.T, s.Progress, s.T)
	}
}

func readSecret(stdin io.Reader, stdout io.Writer, prompt string) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stdout, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stdout)
		return strings.TrimSpace(string(b)), err
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("reading share: %w", err)
	}
	return strings.TrimSpace(line), nil
}

// token gets a management-audience token with the client credentials flow.
func (oc *operatorClient) token(ctx context.Context) (string, error) {
	tenant := cmp.Or(oc.tenant, oc.getenv("KEYWARD_TENANT_ID"))
	clientID := cmp.Or(oc.clientID, oc.getenv("KEYWARD_CLIENT_ID"))
	secret := oc.getenv("KEYWARD_CLIENT_SECRET")
	if oc.secretFile != "" {
		b, err := os.ReadFile(oc.secretFile)
		if err != nil {
			return "", err
		}
		secret = strings.TrimSpace(string(b))
	}
	if tenant == "" || clientID == "" || secret == "" {
		return "", errors.New("this command needs administrator credentials: --tenant, --client-id and KEYWARD_CLIENT_SECRET or --client-secret-file")
	}
	var st sealStatus
	if err := oc.call(ctx, http.MethodGet, "/sys/seal-status", "", nil, &st); err != nil {
		return "", err
	}
	return clientCredentialsToken(ctx, oc.http, oc.addr, tenant, clientID, secret, st.ManagementResource)
}

func (oc *operatorClient) call(ctx context.Context, method, path, token string, in, out any) error {
	return callJSON(ctx, oc.http, method, oc.addr+path, path, token, in, out)
}
