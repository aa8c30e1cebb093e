package api

import (
	"context"
	"net/http"

	"github.com/keyward/keyward/internal/certificates"
	"github.com/keyward/keyward/internal/vault"
)

// The handlers keys, secrets and certificates share. Each is the same
// steps for every object type; the domain call (a method expression on
// *vault.Service or *certificates.Service) and the wire form (an out
// function) are what differ, so a routes line names both, e.g.
//
//	handle: objectHandler((*vault.Service).DeleteSecret, secretFull)

// service is the domain service S of the request's handler.
func service[S any](rq *request) S {
	var svc any
	switch any(*new(S)).(type) {
	case *vault.Service:
		svc = rq.h.vaults
	case *certificates.Service:
		svc = rq.h.certs
	}
	return svc.(S)
}

// objectHandler answers a request about one named object (delete, get
// deleted, recover) with that object.
func objectHandler[S, T, W any](op func(S, context.Context, *vault.Vault, string) (T, error), out func(*request, T) W) func(*request) error {
	return func(rq *request) error {
		obj, err := op(service[S](rq), rq.r.Context(), rq.vault, rq.params["name"])
		if err != nil {
			return err
		}
		return rq.reply(http.StatusOK, out(rq, obj))
	}
}

// purgeHandler answers a purge: 204 and no body.
func purgeHandler[S any](op func(S, context.Context, *vault.Vault, string) error) func(*request) error {
	return func(rq *request) error {
		if err := op(service[S](rq), rq.r.Context(), rq.vault, rq.params["name"]); err != nil {
			return err
		}
		return rq.reply(http.StatusNoContent, nil)
	}
}

// listHandler answers a paged list of a collection (live or deleted).
func listHandler[S, T, W any](list func(S, context.Context, *vault.Vault, string, int) (*vault.Page[T], error), out func(*request, T) W) func(*request) error {
	return func(rq *request) error {
		after, limit, err := rq.paging()
		if err != nil {
			return err
		}
		p, err := list(service[S](rq), rq.r.Context(), rq.vault, after, limit)
		if err != nil {
			return err
		}
		return rq.reply(http.StatusOK, pageOf(rq, p, out))
	}
}

// versionsHandler answers a paged list of one object's versions.
func versionsHandler[S, T, W any](list func(S, context.Context, *vault.Vault, string, string, int) (*vault.Page[T], error), out func(*request, T) W) func(*request) error {
	return func(rq *request) error {
		after, limit, err := rq.paging()
		if err != nil {
			return err
		}
		p, err := list(service[S](rq), rq.r.Context(), rq.vault, rq.params["name"], after, limit)
		if err != nil {
			return err
		}
		return rq.reply(http.StatusOK, pageOf(rq, p, out))
	}
}

// pageOf is a domain page in wire form; an empty page is "value": [].
func pageOf[T, W any](rq *request, p *vault.Page[T], out func(*request, T) W) page[W] {
	res := page[W]{Value: make([]W, 0, len(p.Items)), NextLink: rq.nextLink(p.Next)}
	for _, it := range p.Items {
		res.Value = append(res.Value, out(rq, it))
	}
	return res
}

// The wire forms of list items and whole objects.
func secretItem(rq *request, s *vault.Secret) *secretBundle { return rq.secretOut(s, false) }
func secretFull(rq *request, s *vault.Secret) *secretBundle { return rq.secretOut(s, true) }
func keyItem(rq *request, k *vault.Key) *keyBundle          { return rq.keyOut(k, true) }
func keyFull(rq *request, k *vault.Key) *keyBundle          { return rq.keyOut(k, false) }
func certItem(rq *request, c *certificates.Certificate) *certBundleWire {
	return rq.certOut(c, true, false)
}
func certFull(rq *request, c *certificates.Certificate) *certBundleWire {
	return rq.certOut(c, false, true)
}

// keyVersionItem is a key version in a versions list: its kid names the
// version.
func keyVersionItem(rq *request, k *vault.Key) *keyBundle {
	b := rq.keyOut(k, true)
	b.Kid = rq.objectURL("keys", k.Name, k.Version)
	return b
}

func certVersionItem(rq *request, c *certificates.Certificate) *certBundleWire {
	return rq.certOut(c, true, true)
}
