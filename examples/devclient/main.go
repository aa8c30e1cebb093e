// Command devclient is the README's example: the official Go SDK
// (azidentity + azsecrets), unmodified, against a Keyward dev server. It
// reads the dev server's dev.json and sets and gets a secret.
//
//	go run ./examples/devclient -dev .keyward-dev/dev.json
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

type devInfo struct {
	TenantID      string `json:"tenant_id"`
	AuthorityHost string `json:"authority_host"`
	ClientID      string `json:"client_id"`
	ClientSecret  string `json:"client_secret"`
	VaultURL      string `json:"vault_url"`
	CAFile        string `json:"ca_file"`
	Listen        string `json:"listen"`
}

func main() {
	devFile := flag.String("dev", ".keyward-dev/dev.json", "the dev server's dev.json")
	flag.Parse()
	value, err := run(context.Background(), *devFile, "db-password", "s3cr3t")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(value)
}

func run(ctx context.Context, devFile, name, value string) (string, error) {
	var dev devInfo
	raw, err := os.ReadFile(devFile)
	if err != nil {
		return "", err
	}
	if err := json.Unmarshal(raw, &dev); err != nil {
		return "", err
	}

	// 1. Trust the dev CA, and reach *.vault.localhost (dial the listener).
	pem, err := os.ReadFile(dev.CAFile)
	if err != nil {
		return "", err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	httpClient := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, dev.Listen)
		},
	}}

	// 2. The authority host and 3. no instance discovery.
	cred, err := azidentity.NewClientSecretCredential(dev.TenantID, dev.ClientID, dev.ClientSecret,
		&azidentity.ClientSecretCredentialOptions{
			ClientOptions: azcore.ClientOptions{
				Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: dev.AuthorityHost},
				Transport: httpClient,
			},
			DisableInstanceDiscovery: true,
		})
	if err != nil {
		return "", err
	}
	client, err := azsecrets.NewClient(dev.VaultURL, cred, &azsecrets.ClientOptions{
		ClientOptions: azcore.ClientOptions{Transport: httpClient}})
	if err != nil {
		return "", err
	}

	if _, err := client.SetSecret(ctx, name, azsecrets.SetSecretParameters{Value: to.Ptr(value)}, nil); err != nil {
		return "", err
	}
	got, err := client.GetSecret(ctx, name, "", nil)
	if err != nil {
		return "", err
	}
	return *got.Value, nil
}
