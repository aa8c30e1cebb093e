// Package events delivers vault events to webhook subscriptions over
// HTTPS, in the Event Grid schema Azure Key Vault uses. The vault package
// queues events (in the same transaction as the change that caused them)
// and decides retries; this package only speaks HTTP.
//
// Every delivery is signed: the header
//
//	Keyward-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + body)>
//
// lets the receiver check that the event comes from its Keyward and is
// fresh. Receivers compare the MAC in constant time (hmac.Equal).
package events

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/netguard"
	"github.com/keyward/keyward/internal/vault"
)

// Webhook sends events with an HTTPS POST.
type Webhook struct {
	client *http.Client
	clock  clock.Clock
}

var _ vault.Sender = (*Webhook)(nil)

// NewWebhook returns a sender. roots, when not nil, replaces the system
// roots for verifying endpoints (private CAs, tests). guard, when not nil,
// decides which hosts and addresses deliveries may connect to, checked on
// the address each connection is made to ([events] allowed_hosts).
func NewWebhook(clk clock.Clock, roots *x509.CertPool, guard *netguard.Policy) *Webhook {
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 4,
	}
	if guard != nil {
		tr.DialContext = guard.DialContext
	}
	return &Webhook{clock: clk, client: &http.Client{
		Timeout:   10 * time.Second,
		Transport: tr,
		// A webhook must answer itself; following redirects would let an
		// endpoint bounce deliveries elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Sign returns the Keyward-Signature header value for body at time t.
func Sign(secret, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Send posts events to sub's endpoint; any answer but 2xx is an error.
func (w *Webhook) Send(ctx context.Context, sub *vault.Subscription, evs []vault.Event) error {
	body, err := json.Marshal(evs)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.Endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("aeg-event-type", "Notification")
	req.Header.Set("aeg-subscription-name", sub.Name)
	req.Header.Set("aeg-delivery-count", "0")
	req.Header.Set("Keyward-Delivery", uuid.NewString())
	req.Header.Set("Keyward-Signature", Sign(sub.Secret, body, w.clock.Now()))
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("delivery failed: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("endpoint answered %s", resp.Status)
	}
	return nil
}
