// Package backupstore opens the containers managed HSM backups go to
// (mhsm.Opener): an Azure Blob Storage container through the official
// azblob module, addressed by its URL and a SAS token (with or without a
// leading '?'), or a local directory (file:///path) for self-hosted users.
// Plain-HTTP container URLs are accepted only on loopback (an emulator such
// as azurite; DESIGN.md contract), so the server is never made to send a
// backup in clear over a network. Which hosts and addresses a container may
// be at is the netguard.Policy's decision ([backup] allowed_hosts): a
// refused destination fails Open, and the connection itself is checked
// again on the address it is made to.
package backupstore

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/keyward/keyward/internal/mhsm"
	"github.com/keyward/keyward/internal/netguard"
)

// Options tune Open.
type Options struct {
	// LocalRoot, when set, permits file:// containers: directories at or
	// below it (the server's DATA/backups).
	LocalRoot string
	// Guard decides which hosts and addresses containers may be at; nil:
	// the default policy (any host name, public addresses only).
	Guard *netguard.Policy
	// Transport, when set, carries the blob requests (tests); it bypasses
	// the connection-time check (Open still applies Guard).
	Transport policy.Transporter
}

// Opener returns an mhsm.Opener with opts; its containers share one HTTP
// client.
func Opener(opts Options) mhsm.Opener {
	opts.Guard = guard(opts.Guard)
	if opts.Transport == nil {
		opts.Transport = storageClient(opts.Guard)
	}
	return func(ctx context.Context, uri, token string) (mhsm.BlobStore, error) {
		return Open(ctx, uri, token, opts)
	}
}

func guard(g *netguard.Policy) *netguard.Policy {
	if g == nil {
		g, _ = netguard.New(nil, false)
	}
	return g
}

// Open opens the container uri with the SAS token token.
func Open(ctx context.Context, uri, token string, opts Options) (mhsm.BlobStore, error) {
	u, err := url.Parse(uri)
	if err != nil || u.Host == "" && u.Scheme != "file" {
		return nil, errors.New("storageResourceUri is not an absolute URL")
	}
	switch strings.ToLower(u.Scheme) {
	case "file":
		root := filepath.Clean(opts.LocalRoot)
		p := filepath.Clean(u.Path)
		if opts.LocalRoot == "" || !filepath.IsAbs(u.Path) || (p != root && !strings.HasPrefix(p, root+string(filepath.Separator))) {
			return nil, fmt.Errorf("a file:// container must be a directory below %s", root)
		}
		if err := os.MkdirAll(u.Path, 0o700); err != nil {
			return nil, errors.New("the backup directory cannot be created")
		}
		return dir{path: filepath.Clean(u.Path), uri: "file://" + filepath.Clean(u.Path)}, nil
	case "https":
	case "http":
		host := u.Hostname()
		ip := net.ParseIP(host)
		if !(host == "localhost" || strings.HasSuffix(host, ".localhost") || ip != nil && ip.IsLoopback()) {
			return nil, errors.New("plain http is accepted only for a container on loopback (an emulator)")
		}
	default:
		return nil, errors.New("storageResourceUri must be https (or http on loopback, or file://)")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, errors.New("storageResourceUri must not carry a query (pass the SAS token as token)")
	}
	opts.Guard = guard(opts.Guard)
	if err := opts.Guard.Check(ctx, u.Hostname()); err != nil {
		return nil, err
	}
	base := strings.TrimSuffix(u.String(), "/")
	full := base
	if t := strings.TrimPrefix(token, "?"); t != "" {
		full += "?" + t
	}
	co := &container.ClientOptions{ClientOptions: azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: 2}}}
	co.Transport = opts.Transport
	if co.Transport == nil {
		co.Transport = storageClient(opts.Guard)
	}
	c, err := container.NewClientWithNoCredential(full, co)
	if err != nil {
		return nil, errors.New("the container URL is not valid")
	}
	return blob{c: c, uri: base}, nil
}

type blob struct {
	c   *container.Client
	uri string
}

func (b blob) URI() string { return b.uri }

func (b blob) Put(ctx context.Context, name string, data []byte) error {
	_, err := b.c.NewBlockBlobClient(name).UploadBuffer(ctx, data, nil)
	return storageErr(err)
}

func (b blob) Get(ctx context.Context, name string) ([]byte, error) {
	r, err := b.c.NewBlobClient(name).DownloadStream(ctx, nil)
	if err != nil {
		return nil, storageErr(err)
	}
	defer r.Body.Close()
	return io.ReadAll(io.LimitReader(r.Body, 1<<30))
}

// storageErr keeps the storage service's status and code, never the URL
// (which may carry the SAS token).
func storageErr(err error) error {
	if err == nil {
		return nil
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return fmt.Errorf("blob storage answered %d %s", re.StatusCode, re.ErrorCode)
	}
	return errors.New("blob storage is unreachable")
}

type dir struct{ path, uri string }

func (d dir) URI() string { return d.uri }

func (d dir) file(name string) (string, error) {
	p := filepath.Join(d.path, filepath.FromSlash(name))
	if !strings.HasPrefix(p, d.path+string(filepath.Separator)) {
		return "", errors.New("the name leaves the backup directory")
	}
	return p, nil
}

func (d dir) Put(_ context.Context, name string, data []byte) error {
	p, err := d.file(name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return errors.New("the backup folder cannot be created")
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return errors.New("the backup cannot be written")
	}
	return os.Rename(tmp, p)
}

func (d dir) Get(_ context.Context, name string) ([]byte, error) {
	p, err := d.file(name)
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		return nil, errors.New("the backup cannot be read")
	}
	return bytes.Clone(raw), nil
}

// storageClient carries blob requests to where g allows: every
// connection is checked on the address it is made to (netguard). Blob
// storage never redirects, so a redirect is answered as the error it is
// rather than followed (following it would send the backup, or a read, to
// an address no rule checked — plain http off loopback included).
func storageClient(g *netguard.Policy) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 g.Proxy,
			DialContext:           g.DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
			TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
