package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	netmail "net/mail"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/server"
)

// mailbox is a real SMTP server (go-smtp) on loopback that requires
// AUTH PLAIN and keeps what it receives.
type mailbox struct {
	mu   sync.Mutex
	msgs []received
	addr string
}

type received struct {
	from string
	to   []string
	msg  *netmail.Message
	body string
}

func startMailbox(t *testing.T) *mailbox {
	t.Helper()
	mb := &mailbox{}
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &mailSession{mb: mb}, nil }))
	s.Domain = "mail.test"
	s.AllowInsecureAuth = true // loopback only
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mb.addr = ln.Addr().String()
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return mb
}

func (mb *mailbox) all() []received {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	return slices.Clone(mb.msgs)
}

type mailSession struct {
	mb   *mailbox
	auth bool
	from string
	to   []string
}

func (s *mailSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *mailSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "keyward" || pass != "mail-secret" {
			return errors.New("bad credentials")
		}
		s.auth = true
		return nil
	}), nil
}

func (s *mailSession) Mail(from string, _ *smtp.MailOptions) error {
	if !s.auth {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *mailSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	body, err := io.ReadAll(quotedprintable.NewReader(m.Body))
	if err != nil {
		return err
	}
	s.mb.mu.Lock()
	s.mb.msgs = append(s.mb.msgs, received{from: s.from, to: s.to, msg: m, body: string(body)})
	s.mb.mu.Unlock()
	return nil
}

func (s *mailSession) Reset()        { s.from, s.to = "", nil }
func (s *mailSession) Logout() error { return nil }

func subscribe(t *testing.T, e *kwtest.Env, h *hook, url string, types ...string) {
	t.Helper()
	tok, err := e.Credential().GetToken(context.Background(), tokenOpts(e))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"endpointUrl": url, "includedEventTypes": types})
	res := do(t, e, http.MethodPut, e.Info.VaultURL+"eventsubscriptions/certs?api-version=7.6", tok.Token, "application/json", string(body))
	var sub struct {
		Secret string `json:"signingSecret"`
	}
	json.Unmarshal([]byte(res.Body), &sub)
	if res.Status != 200 || sub.Secret == "" {
		t.Fatalf("subscribe: %d %s", res.Status, res.Body)
	}
	h.mu.Lock()
	h.secret, _ = base64.RawURLEncoding.DecodeString(sub.Secret)
	h.mu.Unlock()
}

func TestCertificateAutoRenewAndEmailWithFakeClock(t *testing.T) {
	h := &hook{t: t}
	ts := httptest.NewTLSServer(h)
	defer ts.Close()
	pool := ts.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	mb := startMailbox(t)

	start := time.Now().Truncate(time.Second)
	clk := clock.NewFake(start)
	e := kwtest.Start(t, kwtest.Options{Clock: clk, SchedulerInterval: 20 * time.Millisecond, EventRoots: pool,
		SMTP: &server.SMTPConfig{Addr: mb.addr, From: "keyward@vault.test", Username: "keyward", Password: "mail-secret", TLS: "none"}})
	ctx := context.Background()
	subscribe(t, e, h, ts.URL+"/events", "Microsoft.KeyVault.CertificateNewVersionCreated",
		"Microsoft.KeyVault.CertificateNearExpiry", "Microsoft.KeyVault.CertificateExpired")
	c := certsClient(t, e)
	if _, err := c.SetContacts(ctx, azcertificates.Contacts{ContactList: []*azcertificates.Contact{
		{Email: to.Ptr("pki@example.com"), Name: to.Ptr("PKI")}, {Email: to.Ptr("oncall@example.com")}}}, nil); err != nil {
		t.Fatal(err)
	}
	action := func(a azcertificates.CertificatePolicyAction, pct, days int32) []*azcertificates.LifetimeAction {
		tr := &azcertificates.LifetimeActionTrigger{}
		if pct > 0 {
			tr.LifetimePercentage = to.Ptr(pct)
		} else {
			tr.DaysBeforeExpiry = to.Ptr(days)
		}
		return []*azcertificates.LifetimeAction{{Trigger: tr, Action: &azcertificates.LifetimeActionType{ActionType: to.Ptr(a)}}}
	}
	renewing := ecSelfPolicy("CN=renewing")
	renewing.X509CertificateProperties.ValidityInMonths = to.Ptr(int32(12))
	renewing.LifetimeActions = action(azcertificates.CertificatePolicyActionAutoRenew, 80, 0)
	mailing := ecSelfPolicy("CN=mailing")
	mailing.X509CertificateProperties.ValidityInMonths = to.Ptr(int32(12))
	mailing.LifetimeActions = action(azcertificates.CertificatePolicyActionEmailContacts, 0, 30)
	for name, pol := range map[string]*azcertificates.CertificatePolicy{"renewing": renewing, "mailing": mailing} {
		if _, err := c.CreateCertificate(ctx, name, azcertificates.CreateCertificateParameters{CertificatePolicy: pol,
			Tags: map[string]*string{"app": to.Ptr(name)}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	first, err := c.GetCertificate(ctx, "renewing", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Tokens are issued on the fake clock: after each jump a fresh client.
	versions := func(name string) []*azcertificates.CertificateProperties {
		var out []*azcertificates.CertificateProperties
		for pg := certsClient(t, e).NewListCertificatePropertiesVersionsPager(name, nil); pg.More(); {
			p, err := pg.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, p.Value...)
		}
		return out
	}
	day := 24 * time.Hour

	// 270 days (~8.9 months): before 80% of the lifetime, nothing happens.
	clk.Advance(270 * day)
	ranAt(t, e, clk)
	if n := len(versions("renewing")); n != 1 {
		t.Fatalf("renewed before 80%%: %d versions", n)
	}
	// 300 days (~9.9 months, past 80% ≈ 9.6 months): renewed exactly once.
	clk.Advance(30 * day)
	ranAt(t, e, clk)
	waitFor(t, "auto-renewal", func() bool { return len(versions("renewing")) == 2 })
	runAgain(t, e)
	if n := len(versions("renewing")); n != 2 {
		t.Fatalf("renewal ran more than once: %d versions", n)
	}
	c = certsClient(t, e)
	renewed, err := c.GetCertificate(ctx, "renewing", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf := mustCert(t, renewed.CER)
	now := clk.Now()
	if renewed.ID.Version() == first.ID.Version() || leaf.NotBefore.Sub(now).Abs() > 10*time.Minute ||
		leaf.NotAfter.Sub(now.AddDate(0, 12, 0)).Abs() > 10*time.Minute {
		t.Fatalf("renewed version %s valid %v..%v (now %v)", renewed.ID.Version(), leaf.NotBefore, leaf.NotAfter, now)
	}
	if samePub(leaf.PublicKey, mustCert(t, first.CER).PublicKey) {
		t.Fatal("renewal without reuse_key must make a new key")
	}
	if *renewed.Tags["app"] != "renewing" {
		t.Fatal("renewal dropped the tags")
	}
	checkBacking(t, allClients(t, e), renewed.Certificate, true)
	waitFor(t, "CertificateNewVersionCreated (create + renewal)", func() bool {
		return h.count("Microsoft.KeyVault.CertificateNewVersionCreated", "renewing") == 2
	})
	if len(mb.all()) != 0 {
		t.Fatal("mail sent too early")
	}

	// 340 days: 30 days before "mailing" expires, its contacts get mail
	// and the webhook CertificateNearExpiry — once.
	clk.Advance(40 * day)
	ranAt(t, e, clk)
	waitFor(t, "expiry mail", func() bool { return len(mb.all()) == 1 })
	waitFor(t, "CertificateNearExpiry", func() bool { return h.count("Microsoft.KeyVault.CertificateNearExpiry", "mailing") == 1 })
	runAgain(t, e)
	msgs := mb.all()
	if len(msgs) != 1 {
		t.Fatalf("%d mails, want 1", len(msgs))
	}
	m := msgs[0]
	subject, _ := new(mime.WordDecoder).DecodeHeader(m.msg.Header.Get("Subject"))
	slices.Sort(m.to)
	if m.from != "keyward@vault.test" || !slices.Equal(m.to, []string{"oncall@example.com", "pki@example.com"}) ||
		!strings.Contains(subject, "mailing") || !strings.Contains(m.body, e.Info.VaultURL+"certificates/mailing/") ||
		!strings.Contains(m.body, "in 2") { // "(in 25 days)" or so
		t.Fatalf("mail from %s to %v subject %q body %q", m.from, m.to, subject, m.body)
	}
	if n := h.count("Microsoft.KeyVault.CertificateNearExpiry", "renewing"); n != 0 {
		t.Fatalf("the renewed certificate's old version announced near expiry %d times", n)
	}

	// 370 days: "mailing" expired (no AutoRenew): CertificateExpired.
	clk.Advance(30 * day)
	ranAt(t, e, clk)
	waitFor(t, "CertificateExpired", func() bool { return h.count("Microsoft.KeyVault.CertificateExpired", "mailing") == 1 })
	runAgain(t, e)
	if len(mb.all()) != 1 || h.count("Microsoft.KeyVault.CertificateExpired", "renewing") != 0 {
		t.Fatal("extra mail or expiry events")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.bad != 0 {
		t.Fatalf("%d deliveries with a bad signature", h.bad)
	}
	for _, ev := range h.events {
		data := ev["data"].(map[string]any)
		if data["ObjectType"] != "Certificate" || data["VaultName"] != "dev" {
			t.Fatalf("event data %v", data)
		}
	}
}
