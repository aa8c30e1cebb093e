package vault

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/jobs"
)

// Event types, as Azure Key Vault publishes them to Event Grid.
const (
	EventKeyNewVersionCreated    = "Microsoft.KeyVault.KeyNewVersionCreated"
	EventKeyNearExpiry           = "Microsoft.KeyVault.KeyNearExpiry"
	EventKeyExpired              = "Microsoft.KeyVault.KeyExpired"
	EventSecretNewVersionCreated = "Microsoft.KeyVault.SecretNewVersionCreated"
	EventSecretNearExpiry        = "Microsoft.KeyVault.SecretNearExpiry"
	EventSecretExpired           = "Microsoft.KeyVault.SecretExpired"
	EventCertNewVersionCreated   = "Microsoft.KeyVault.CertificateNewVersionCreated"
	EventCertNearExpiry          = "Microsoft.KeyVault.CertificateNearExpiry"
	EventCertExpired             = "Microsoft.KeyVault.CertificateExpired"
)

// EventTypes lists every event type Keyward publishes.
var EventTypes = []string{
	EventKeyNewVersionCreated, EventKeyNearExpiry, EventKeyExpired,
	EventSecretNewVersionCreated, EventSecretNearExpiry, EventSecretExpired,
	EventCertNewVersionCreated, EventCertNearExpiry, EventCertExpired,
}

func eventType(t ObjectType, what string) string {
	prefix := map[ObjectType]string{Keys: "Key", Secrets: "Secret", Certificates: "Certificate"}[t]
	return "Microsoft.KeyVault." + prefix + what
}

// Event is one event in the Event Grid schema Key Vault uses.
type Event struct {
	ID              string    `json:"id"`
	Topic           string    `json:"topic"`
	Subject         string    `json:"subject"`
	EventType       string    `json:"eventType"`
	EventTime       time.Time `json:"eventTime"`
	Data            EventData `json:"data"`
	DataVersion     string    `json:"dataVersion"`
	MetadataVersion string    `json:"metadataVersion"`
}

// EventData is the data of a Key Vault event. Field names are Azure's.
type EventData struct {
	ID         string `json:"Id"`
	VaultName  string `json:"VaultName"`
	ObjectType string `json:"ObjectType"`
	ObjectName string `json:"ObjectName"`
	Version    string `json:"Version"`
	NBF        *int64 `json:"NBF"`
	EXP        *int64 `json:"EXP"`
}

// Subscription delivers a vault's events to a webhook. Secret is the key
// of the HMAC-SHA256 signature on every delivery; it is returned once, when
// the subscription is created.
type Subscription struct {
	Name       string   `json:"name"`
	Endpoint   string   `json:"endpointUrl"`
	EventTypes []string `json:"includedEventTypes,omitempty"`
	Secret     []byte   `json:"secret"`
	Created    int64    `json:"created"`
}

// Delivery is one queued event for one subscription.
type Delivery struct {
	ID           string `json:"id"`
	Subscription string `json:"subscription"`
	Event        Event  `json:"event"`
	Attempts     int    `json:"attempts"`
	LastError    string `json:"lastError,omitempty"`
	key          string
	vault        *Vault
}

// Sender delivers one event to a subscription's endpoint. It lives outside
// this package (it speaks HTTP); an error means "retry later".
type Sender interface {
	Send(ctx context.Context, sub *Subscription, events []Event) error
}

func (v *Vault) subPrefix() string   { return "ev/s/" }
func (v *Vault) queuePrefix() string { return "ev/q/" }
func (v *Vault) deadPrefix() string  { return "ev/dead/" }

// PutSubscription creates or replaces an event subscription. A new
// subscription gets a random signing secret, returned in the result.
func (s *Service) PutSubscription(ctx context.Context, v *Vault, sub Subscription) (*Subscription, error) {
	if !ValidName(sub.Name) {
		return nil, badParameter("Invalid subscription name: %s.", clip(sub.Name))
	}
	u, err := url.Parse(sub.Endpoint)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return nil, badParameter("endpointUrl must be an https:// URL without credentials.")
	}
	for _, t := range sub.EventTypes {
		if !slices.Contains(EventTypes, t) {
			return nil, badParameter("Unknown event type %s.", clip(t))
		}
	}
	sub.Created = s.clock.Now().Unix()
	if len(sub.Secret) == 0 {
		sub.Secret = make([]byte, 32)
		rand.Read(sub.Secret)
	}
	err = s.in(v).Update(ctx, func(tx barrier.Tx) error {
		return barrier.PutJSON(tx, v.subPrefix()+strings.ToLower(sub.Name), &sub)
	})
	if err != nil {
		return nil, err
	}
	return &sub, nil
}

// Subscriptions lists a vault's event subscriptions.
func (s *Service) Subscriptions(ctx context.Context, v *Vault) ([]*Subscription, error) {
	var out []*Subscription
	err := s.in(v).View(ctx, func(tx barrier.Tx) error {
		var err error
		out, err = subscriptions(tx, v)
		return err
	})
	return out, err
}

// DeleteSubscription removes an event subscription.
func (s *Service) DeleteSubscription(ctx context.Context, v *Vault, name string) error {
	return s.in(v).Update(ctx, func(tx barrier.Tx) error {
		key := v.subPrefix() + strings.ToLower(name)
		if ok, err := barrier.GetJSON(tx, key, new(Subscription)); err != nil {
			return err
		} else if !ok {
			return &Error{Kind: NotFound, Name: name, Msg: fmt.Sprintf("Event subscription %s was not found.", clip(name))}
		}
		return tx.Delete(key)
	})
}

func subscriptions(tx barrier.Tx, v *Vault) ([]*Subscription, error) {
	var out []*Subscription
	var inner error
	err := tx.Scan(v.subPrefix(), "", func(_ string, val []byte) bool {
		sub := new(Subscription)
		if inner = json.Unmarshal(val, sub); inner != nil {
			return false
		}
		out = append(out, sub)
		return true
	})
	if err == nil {
		err = inner
	}
	return out, err
}

// emit queues an event for every subscription that wants it, inside the
// transaction that made the change: an event is queued if and only if the
// change is committed (a transactional outbox).
func (s *Service) emit(tx barrier.Tx, v *Vault, typ string, t ObjectType, name, version string, a *Attributes) error {
	subs, err := subscriptions(tx, v)
	if err != nil || len(subs) == 0 {
		return err
	}
	now := s.clock.Now().UTC()
	ev := Event{
		ID:      uuid.NewString(),
		Topic:   fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.KeyVault/vaults/%s", v.SubscriptionID, v.ResourceGroup, v.Name),
		Subject: name, EventType: typ, EventTime: now, DataVersion: "1", MetadataVersion: "1",
		Data: EventData{
			ID: s.objectURL(v, t, name, version), VaultName: v.Name,
			ObjectType: t.title(), ObjectName: name, Version: version,
		},
	}
	if a != nil {
		ev.Data.NBF, ev.Data.EXP = a.NotBefore, a.Expires
	}
	for _, sub := range subs {
		if len(sub.EventTypes) > 0 && !slices.Contains(sub.EventTypes, typ) {
			continue
		}
		d := &Delivery{ID: uuid.NewString(), Subscription: sub.Name, Event: ev}
		if err := barrier.PutJSON(tx, jobs.DueKey(v.queuePrefix(), now.Unix(), d.ID), d); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) objectURL(v *Vault, t ObjectType, name, version string) string {
	base := "https://" + v.Name + ".vault.localhost/"
	if s.vaultURL != nil {
		base = s.vaultURL(v.Name)
	}
	u := base + string(t) + "/" + name
	if version != "" {
		u += "/" + version
	}
	return u
}

// retryDelays is the delivery retry schedule; after the last, the delivery
// is dead-lettered.
var retryDelays = []time.Duration{
	10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute, 10 * time.Minute,
	30 * time.Minute, time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour, 12 * time.Hour,
}

// DeliverDue sends every queued event whose time has come. A failed
// delivery is retried on the schedule above; events are delivered at least
// once, and a delivery is removed from the queue only after success.
func (s *Service) DeliverDue(ctx context.Context, sender Sender) (int, error) {
	now := s.clock.Now().Unix()
	sent := 0
	for _, v := range s.Vaults() {
		var due []*Delivery
		err := s.in(v).View(ctx, func(tx barrier.Tx) error {
			entries, err := jobs.DueEntries(tx, v.queuePrefix(), now, 100)
			for _, e := range entries {
				d := new(Delivery)
				if err := json.Unmarshal(e.Value, d); err != nil {
					return err
				}
				d.key, d.vault = e.Key, v
				due = append(due, d)
			}
			return err
		})
		if err != nil {
			return sent, err
		}
		if len(due) == 0 {
			continue
		}
		subs, err := s.Subscriptions(ctx, v)
		if err != nil {
			return sent, err
		}
		for _, d := range due {
			var sub *Subscription
			for _, x := range subs {
				if strings.EqualFold(x.Name, d.Subscription) {
					sub = x
				}
			}
			var sendErr error
			if sub != nil {
				sendErr = sender.Send(ctx, sub, []Event{d.Event})
			}
			err := s.in(v).Update(ctx, func(tx barrier.Tx) error {
				if err := tx.Delete(d.key); err != nil {
					return err
				}
				if sendErr == nil || sub == nil {
					return nil
				}
				d.Attempts++
				d.LastError = sendErr.Error()
				if d.Attempts > len(retryDelays) {
					return barrier.PutJSON(tx, v.deadPrefix()+d.ID, d)
				}
				next := time.Unix(now, 0).Add(retryDelays[d.Attempts-1]).Unix()
				return barrier.PutJSON(tx, jobs.DueKey(v.queuePrefix(), next, d.ID), d)
			})
			if err != nil {
				return sent, err
			}
			if sendErr == nil && sub != nil {
				sent++
			}
		}
	}
	return sent, nil
}
