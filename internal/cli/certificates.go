package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/spf13/cobra"
)

// defaultPolicy is what az keyvault certificate get-default-policy prints.
func defaultPolicy() map[string]any {
	return map[string]any{
		"issuerParameters": map[string]any{"certificateTransparency": nil, "name": "Self"},
		"keyProperties":    map[string]any{"curve": nil, "exportable": true, "keySize": 2048, "keyType": "RSA", "reuseKey": true},
		"lifetimeActions":  []any{map[string]any{"action": map[string]any{"actionType": "AutoRenew"}, "trigger": map[string]any{"daysBeforeExpiry": 90}}},
		"secretProperties": map[string]any{"contentType": "application/x-pkcs12"},
		"x509CertificateProperties": map[string]any{
			"keyUsage":         []any{"cRLSign", "dataEncipherment", "digitalSignature", "keyEncipherment", "keyAgreement", "keyCertSign"},
			"subject":          "CN=CLIGetDefaultPolicy",
			"validityInMonths": 12,
		},
	}
}

// policyFromAz reads a policy in az's shape (get-default-policy's) into
// the SDK's model.
func policyFromAz(raw []byte) (*azcertificates.CertificatePolicy, error) {
	var in struct {
		IssuerParameters *struct {
			Name                    *string `json:"name"`
			CertificateType         *string `json:"certificateType"`
			CertificateTransparency *bool   `json:"certificateTransparency"`
		} `json:"issuerParameters"`
		KeyProperties *struct {
			Curve      *string `json:"curve"`
			Exportable *bool   `json:"exportable"`
			KeySize    *int32  `json:"keySize"`
			KeyType    *string `json:"keyType"`
			ReuseKey   *bool   `json:"reuseKey"`
		} `json:"keyProperties"`
		LifetimeActions []struct {
			Action  struct{ ActionType *string } `json:"action"`
			Trigger struct {
				DaysBeforeExpiry   *int32 `json:"daysBeforeExpiry"`
				LifetimePercentage *int32 `json:"lifetimePercentage"`
			} `json:"trigger"`
		} `json:"lifetimeActions"`
		SecretProperties *struct {
			ContentType *string `json:"contentType"`
		} `json:"secretProperties"`
		X509 *struct {
			Ekus                    []*string `json:"ekus"`
			KeyUsage                []string  `json:"keyUsage"`
			Subject                 *string   `json:"subject"`
			ValidityInMonths        *int32    `json:"validityInMonths"`
			SubjectAlternativeNames *struct {
				DNSNames []*string `json:"dnsNames"`
				Emails   []*string `json:"emails"`
				Upns     []*string `json:"upns"`
			} `json:"subjectAlternativeNames"`
		} `json:"x509CertificateProperties"`
	}
	d := json.NewDecoder(strings.NewReader(string(raw)))
	if err := d.Decode(&in); err != nil {
		return nil, fmt.Errorf("--policy is not a certificate policy: %v", err)
	}
	p := &azcertificates.CertificatePolicy{}
	if i := in.IssuerParameters; i != nil {
		p.IssuerParameters = &azcertificates.IssuerParameters{Name: i.Name, CertificateType: i.CertificateType, CertificateTransparency: i.CertificateTransparency}
	}
	if kp := in.KeyProperties; kp != nil {
		p.KeyProperties = &azcertificates.KeyProperties{Exportable: kp.Exportable, KeySize: kp.KeySize, ReuseKey: kp.ReuseKey}
		if kp.KeyType != nil {
			p.KeyProperties.KeyType = to.Ptr(azcertificates.KeyType(*kp.KeyType))
		}
		if kp.Curve != nil {
			p.KeyProperties.Curve = to.Ptr(azcertificates.CurveName(*kp.Curve))
		}
	}
	for _, la := range in.LifetimeActions {
		a := &azcertificates.LifetimeAction{Trigger: &azcertificates.LifetimeActionTrigger{DaysBeforeExpiry: la.Trigger.DaysBeforeExpiry, LifetimePercentage: la.Trigger.LifetimePercentage}}
		if la.Action.ActionType != nil {
			a.Action = &azcertificates.LifetimeActionType{ActionType: to.Ptr(azcertificates.CertificatePolicyAction(*la.Action.ActionType))}
		}
		p.LifetimeActions = append(p.LifetimeActions, a)
	}
	if sp := in.SecretProperties; sp != nil {
		p.SecretProperties = &azcertificates.SecretProperties{ContentType: sp.ContentType}
	}
	if x := in.X509; x != nil {
		p.X509CertificateProperties = &azcertificates.X509CertificateProperties{Subject: x.Subject, EnhancedKeyUsage: x.Ekus, ValidityInMonths: x.ValidityInMonths}
		for _, u := range x.KeyUsage {
			p.X509CertificateProperties.KeyUsage = append(p.X509CertificateProperties.KeyUsage, to.Ptr(azcertificates.KeyUsageType(u)))
		}
		if s := x.SubjectAlternativeNames; s != nil {
			p.X509CertificateProperties.SubjectAlternativeNames = &azcertificates.SubjectAlternativeNames{DNSNames: s.DNSNames, Emails: s.Emails, UserPrincipalNames: s.Upns}
		}
	}
	return p, nil
}

func (k *kv) certificateCmd() *cobra.Command {
	g := &cobra.Command{Use: "certificate", Short: "Manage certificates"}
	client := func(ctx context.Context, ob *object, needName bool) (*azcertificates.Client, string, string, error) {
		s, err := k.session(ctx)
		if err != nil {
			return nil, "", "", err
		}
		vaultURL, name, version, err := ob.resolve(s, "certificates", needName)
		if err != nil {
			return nil, "", "", err
		}
		c, err := s.certificates(vaultURL)
		return c, name, version, err
	}

	// create
	var cOb object
	var policyArg string
	var tags []string
	var disabled bool
	create := &cobra.Command{Use: "create", Short: "Create a certificate and wait for it (a progress line on a terminal)", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, _ *session) (any, error) {
			c, name, _, err := client(ctx, &cOb, true)
			if err != nil {
				return nil, err
			}
			raw, err := jsonArg("policy", policyArg)
			if err != nil {
				return nil, err
			}
			pol, err := policyFromAz(raw)
			if err != nil {
				return nil, err
			}
			r, err := c.CreateCertificate(ctx, name, azcertificates.CreateCertificateParameters{CertificatePolicy: pol, Tags: parseTags(tags),
				CertificateAttributes: &azcertificates.CertificateAttributes{Enabled: to.Ptr(!disabled)}}, nil)
			if err != nil {
				return nil, err
			}
			op := r.CertificateOperation
			if pol.IssuerParameters != nil && pol.IssuerParameters.Name != nil && strings.EqualFold(*pol.IssuerParameters.Name, "Unknown") {
				return azOperation(op), nil // waits for a merge: az returns at once
			}
			bar := k.progress("Creating certificate "+name, 1)
			for op.Status != nil && strings.EqualFold(*op.Status, "inProgress") {
				bar.step(0)
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(500 * time.Millisecond):
				}
				gr, err := c.GetCertificateOperation(ctx, name, nil)
				if err != nil {
					return nil, err
				}
				op = gr.CertificateOperation
			}
			bar.step(1)
			bar.finish()
			return azOperation(op), nil
		})}
	cOb.flags(create.Flags(), false)
	create.Flags().StringVarP(&policyArg, "policy", "p", "", "the policy: JSON or @file (see get-default-policy)")
	create.Flags().StringSliceVar(&tags, "tags", nil, "space- or comma-separated key[=value] tags")
	create.Flags().BoolVar(&disabled, "disabled", false, "create it disabled")

	// import
	var iOb object
	var iFile, password, iPolicy string
	var iTags []string
	var iDisabled bool
	imp := &cobra.Command{Use: "import", Short: "Import a certificate with its private key (PFX or PEM)", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, _ *session) (any, error) {
			c, name, _, err := client(ctx, &iOb, true)
			if err != nil {
				return nil, err
			}
			raw, err := readFile("file", iFile)
			if err != nil {
				return nil, err
			}
			p := azcertificates.ImportCertificateParameters{Tags: parseTags(iTags),
				CertificateAttributes: &azcertificates.CertificateAttributes{Enabled: to.Ptr(!iDisabled)}}
			if password != "" {
				p.Password = &password
			}
			if iPolicy != "" {
				rawP, err := jsonArg("policy", iPolicy)
				if err != nil {
					return nil, err
				}
				if p.CertificatePolicy, err = policyFromAz(rawP); err != nil {
					return nil, err
				}
			}
			if b, _ := pem.Decode(raw); b != nil {
				p.Base64EncodedCertificate = to.Ptr(string(raw))
				if p.CertificatePolicy == nil {
					p.CertificatePolicy = &azcertificates.CertificatePolicy{}
				}
				p.CertificatePolicy.SecretProperties = &azcertificates.SecretProperties{ContentType: to.Ptr("application/x-pem-file")}
			} else {
				p.Base64EncodedCertificate = to.Ptr(base64.StdEncoding.EncodeToString(raw))
			}
			r, err := c.ImportCertificate(ctx, name, p, nil)
			if err != nil {
				return nil, err
			}
			return azCertificate(r.Certificate, false), nil
		})}
	iOb.flags(imp.Flags(), false)
	imp.Flags().StringVarP(&iFile, "file", "f", "", "PFX or PEM file with the certificate and its private key")
	imp.Flags().StringVar(&password, "password", "", "the PFX password")
	imp.Flags().StringVarP(&iPolicy, "policy", "p", "", "a policy: JSON or @file")
	imp.Flags().StringSliceVar(&iTags, "tags", nil, "space- or comma-separated key[=value] tags")
	imp.Flags().BoolVar(&iDisabled, "disabled", false, "import it disabled")

	// show
	var sOb object
	show := &cobra.Command{Use: "show", Short: "Show a certificate", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, _ *session) (any, error) {
			c, name, version, err := client(ctx, &sOb, true)
			if err != nil {
				return nil, err
			}
			r, err := c.GetCertificate(ctx, name, version, nil)
			if err != nil {
				return nil, err
			}
			return azCertificate(r.Certificate, false), nil
		})}
	sOb.flags(show.Flags(), true)

	// list
	var lOb object
	list := &cobra.Command{Use: "list", Short: "List the certificates of a vault", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, _ *session) (any, error) {
			c, _, _, err := client(ctx, &lOb, false)
			if err != nil {
				return nil, err
			}
			out := []any{}
			for pg := c.NewListCertificatePropertiesPager(nil); pg.More(); {
				page, err := pg.NextPage(ctx)
				if err != nil {
					return nil, err
				}
				for _, it := range page.Value {
					out = append(out, azCertificateItem(it))
				}
			}
			return out, nil
		})}
	list.Flags().StringVar(&lOb.vault, "vault-name", "", "name of the vault")

	// download
	var dOb object
	var dFile, dEnc string
	download := &cobra.Command{Use: "download", Short: "Write a certificate (public part) to a file", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, _ *session) (any, error) {
			c, name, version, err := client(ctx, &dOb, true)
			if err != nil {
				return nil, err
			}
			if dEnc != "PEM" && dEnc != "DER" {
				return nil, fmt.Errorf("--encoding %q is not PEM or DER", dEnc)
			}
			if dFile == "" {
				return nil, errors.New("--file is required")
			}
			r, err := c.GetCertificate(ctx, name, version, nil)
			if err != nil {
				return nil, err
			}
			data := r.CER
			if dEnc == "PEM" {
				data = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.CER})
			}
			return nil, writeNew(dFile, data, 0o644)
		})}
	dOb.flags(download.Flags(), true)
	download.Flags().StringVarP(&dFile, "file", "f", "", "the file to write (must not exist)")
	download.Flags().StringVarP(&dEnc, "encoding", "e", "PEM", "PEM or DER")

	// get-default-policy
	gdp := &cobra.Command{Use: "get-default-policy", Short: "Print a default certificate policy to start from", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return k.out.print(toAny(defaultPolicy()), nil) }}
	gdp.Flags().Bool("scaffold", false, "accepted for az compatibility")

	// pending merge
	pending := &cobra.Command{Use: "pending", Short: "A certificate's pending creation"}
	var mOb object
	var mFile string
	merge := &cobra.Command{Use: "merge", Short: "Merge the signed certificate (PEM or DER) into a pending one", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, _ *session) (any, error) {
			c, name, _, err := client(ctx, &mOb, true)
			if err != nil {
				return nil, err
			}
			raw, err := readFile("file", mFile)
			if err != nil {
				return nil, err
			}
			var x5c [][]byte
			for rest := raw; ; {
				var b *pem.Block
				b, rest = pem.Decode(rest)
				if b == nil {
					break
				}
				if b.Type == "CERTIFICATE" {
					x5c = append(x5c, b.Bytes)
				}
			}
			if len(x5c) == 0 {
				x5c = [][]byte{raw} // DER
			}
			r, err := c.MergeCertificate(ctx, name, azcertificates.MergeCertificateParameters{X509Certificates: x5c}, nil)
			if err != nil {
				return nil, err
			}
			return azCertificate(r.Certificate, false), nil
		})}
	mOb.flags(merge.Flags(), false)
	merge.Flags().StringVarP(&mFile, "file", "f", "", "the signed certificate or chain (PEM or DER)")
	var pOb object
	pshow := &cobra.Command{Use: "show", Short: "Show a certificate's pending operation", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, _ *session) (any, error) {
			c, name, _, err := client(ctx, &pOb, true)
			if err != nil {
				return nil, err
			}
			r, err := c.GetCertificateOperation(ctx, name, nil)
			if err != nil {
				return nil, err
			}
			return azOperation(r.CertificateOperation), nil
		})}
	pOb.flags(pshow.Flags(), false)
	pending.AddCommand(merge, pshow)

	g.AddCommand(create, imp, show, list, download, gdp, pending)
	return g
}
