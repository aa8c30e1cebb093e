package api

import (
	"encoding/base64"
	"net/http"
	"net/url"

	"github.com/keyward/keyward/internal/vault"
)

// Event subscriptions are a Keyward extension on the vault host (Azure
// configures them through Event Grid, which Keyward does not host):
//
//	PUT    /eventsubscriptions/{name}  {"endpointUrl","includedEventTypes"}
//	GET    /eventsubscriptions
//	DELETE /eventsubscriptions/{name}
//
// The signing secret is returned once, on creation.

type subscriptionWire struct {
	Name       string   `json:"name"`
	Endpoint   string   `json:"endpointUrl"`
	EventTypes []string `json:"includedEventTypes,omitempty"`
	Secret     string   `json:"signingSecret,omitempty"`
}

func putSubscription(rq *request) error {
	var b subscriptionWire
	if err := rq.decode(&b); err != nil {
		return err
	}
	// Deliveries go where the endpoint says: refuse a destination the
	// server may not reach now, rather than fail every delivery later
	// (each connection is checked again when it is made).
	if u, err := url.Parse(b.Endpoint); err == nil && u.Host != "" && rq.h.webhookGuard != nil {
		if err := rq.h.webhookGuard(rq.r.Context(), u.Hostname()); err != nil {
			return badParam("endpointUrl cannot be used: %s.", clipString(err.Error(), 200))
		}
	}
	sub, err := rq.h.vaults.PutSubscription(rq.r.Context(), rq.vault, vault.Subscription{
		Name: rq.params["name"], Endpoint: b.Endpoint, EventTypes: b.EventTypes})
	if err != nil {
		return err
	}
	rq.w.Header().Set("Cache-Control", "no-store")
	return rq.reply(http.StatusOK, subscriptionWire{Name: sub.Name, Endpoint: sub.Endpoint, EventTypes: sub.EventTypes,
		Secret: base64.RawURLEncoding.EncodeToString(sub.Secret)})
}

func listSubscriptions(rq *request) error {
	subs, err := rq.h.vaults.Subscriptions(rq.r.Context(), rq.vault)
	if err != nil {
		return err
	}
	out := page[subscriptionWire]{Value: []subscriptionWire{}}
	for _, s := range subs {
		out.Value = append(out.Value, subscriptionWire{Name: s.Name, Endpoint: s.Endpoint, EventTypes: s.EventTypes})
	}
	return rq.reply(http.StatusOK, out)
}

func deleteSubscription(rq *request) error {
	if err := rq.h.vaults.DeleteSubscription(rq.r.Context(), rq.vault, rq.params["name"]); err != nil {
		return err
	}
	return rq.reply(http.StatusOK, map[string]string{"name": rq.params["name"]})
}
