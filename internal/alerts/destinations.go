package alerts

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/keyward/keyward/internal/certificates"
	"github.com/keyward/keyward/internal/clock"
)

// Webhook POSTs the alert as JSON. With a secret, the body is signed:
// X-Keyward-Signature: t={unix time},v1={hex HMAC-SHA256(secret, "{t}." + body)},
// so a receiver can check the sender and refuse replays.
type Webhook struct {
	URL    string
	Secret []byte
	Client *http.Client
	Clock  clock.Clock
}

// SignatureHeader names the webhook signature header.
const SignatureHeader = "X-Keyward-Signature"

// Sign returns the signature header value for body at unix time t.
func Sign(secret, body []byte, t int64) string {
	m := hmac.New(sha256.New, secret)
	ts := strconv.FormatInt(t, 10)
	m.Write([]byte(ts + "."))
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature checks a signature header against body.
func VerifySignature(secret, body []byte, header string) bool {
	var ts string
	for _, part := range strings.Split(header, ",") {
		if v, ok := strings.CutPrefix(part, "t="); ok {
			ts = v
		}
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return false
	}
	return hmac.Equal([]byte(Sign(secret, body, t)), []byte(header))
}

// Deliver posts a.
func (w *Webhook) Deliver(ctx context.Context, a *Alert) error {
	body, err := json.Marshal(a)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if len(w.Secret) > 0 {
		req.Header.Set(SignatureHeader, Sign(w.Secret, body, w.Clock.Now().Unix()))
	}
	return send(w.Client, req)
}

// EventGrid POSTs the alert as an Event Grid event (the Event Grid event
// schema: an array of one event of type Keyward.Audit.AlertRaised), so an
// Event Grid topic, a Logic App or a Function's Event Grid trigger takes
// it. Key, when set, is sent as aeg-sas-key.
type EventGrid struct {
	URL    string
	Topic  string
	Key    string
	Client *http.Client
}

// Deliver posts a.
func (g *EventGrid) Deliver(ctx context.Context, a *Alert) error {
	subject := "/alerts/" + a.Rule
	if a.Group != "" {
		subject += "/" + a.Group
	}
	body, err := json.Marshal([]map[string]any{{
		"id": a.ID, "topic": g.Topic, "subject": subject, "eventType": "Keyward.Audit.AlertRaised",
		"eventTime": a.Time, "data": a, "dataVersion": "1", "metadataVersion": "1",
	}})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if g.Key != "" {
		req.Header.Set("aeg-sas-key", g.Key)
	}
	return send(g.Client, req)
}

func send(c *http.Client, req *http.Request) error {
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("alerts: %s answered %d", req.URL.Host, resp.StatusCode)
	}
	return nil
}

// Email mails the alert through the server's mailer.
type Email struct {
	To     []string
	Mailer certificates.Mailer
	Clock  clock.Clock
}

// Deliver mails a.
func (m *Email) Deliver(ctx context.Context, a *Alert) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Keyward alert: %s\r\n\r\n%s\r\n\r\n", a.Rule, a.Description)
	for _, kv := range [][2]string{{"severity", a.Severity}, {"group", a.Group}, {"count", strconv.Itoa(a.Count)},
		{"window", a.Window}, {"time", a.Time.Format("2006-01-02T15:04:05Z07:00")}, {"operation", a.Operation},
		{"vault", a.Vault}, {"object", a.Object}, {"caller object ID", a.CallerOID}, {"caller IP", a.CallerIP},
		{"request ID", a.RequestID}, {"expires", expires(a)}, {"alert ID", a.ID}} {
		if kv[1] != "" && kv[1] != "0" {
			fmt.Fprintf(&b, "%s: %s\r\n", kv[0], kv[1])
		}
	}
	return m.Mailer.Send(ctx, &certificates.Mail{To: m.To, Subject: "Keyward alert " + a.String(), Body: b.String(), Date: m.Clock.Now()})
}

func expires(a *Alert) string {
	if a.Expires == nil {
		return ""
	}
	return a.Expires.UTC().Format("2006-01-02T15:04:05Z07:00")
}
