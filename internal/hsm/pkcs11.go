//go:build cgo

package hsm

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/pkcs11"

	"github.com/keyward/keyward/internal/keys"
)

// HSM is an open PKCS#11 token. It is safe for concurrent use: each token
// call runs on a session checked out of a pool (one session per goroutine:
// CRYPTO.md §1.4 pitfall 1).
type HSM struct {
	cfg    Config
	p      *pkcs11.Ctx
	pin    string
	label  string
	serial string
	model  string // manufacturer and model, for Platform

	mu   sync.Mutex // guards slot and objs; serializes recovery
	slot uint
	objs map[objKey]pkcs11.ObjectHandle
	gen  atomic.Uint64 // bumped by recover: sessions of older generations are closed

	idle chan session
	sem  chan struct{}

	// oaep256 reports whether the token accepts CKM_RSA_PKCS_OAEP with
	// SHA-256 (SoftHSM2 2.6.1 does not).
	oaep256 bool
}

type session struct {
	h   pkcs11.SessionHandle
	gen uint64
}

type objKey struct {
	id    string
	class uint
}

var _ keys.Protector = (*HSM)(nil)
var _ keys.SpecImporter = (*HSM)(nil)

// modules holds one initialized context per PKCS#11 library: a library is
// initialized once per process (a second C_Initialize is an error, and
// C_Finalize would end every other user's sessions).
var modules = struct {
	sync.Mutex
	m map[string]*pkcs11.Ctx
}{m: map[string]*pkcs11.Ctx{}}

// Module returns the process-wide initialized context of a PKCS#11 library.
func module(path string) (*pkcs11.Ctx, error) {
	modules.Lock()
	defer modules.Unlock()
	if p := modules.m[path]; p != nil {
		return p, nil
	}
	p := pkcs11.New(path)
	if p == nil {
		return nil, fmt.Errorf("hsm: cannot load the PKCS#11 module %s", path)
	}
	if err := p.Initialize(); err != nil && !isCKR(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		p.Destroy()
		return nil, fmt.Errorf("hsm: initializing %s: %w", path, err)
	}
	modules.m[path] = p
	return p, nil
}

func isCKR(err error, codes ...uint) bool {
	var e pkcs11.Error
	if !errors.As(err, &e) {
		return false
	}
	return slices.Contains(codes, uint(e))
}

// Open loads the module, finds the token by label, logs in and probes the
// token's capabilities.
func Open(cfg Config) (*HSM, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pin, err := cfg.pin()
	if err != nil {
		return nil, err
	}
	p, err := module(cfg.Module)
	if err != nil {
		return nil, err
	}
	n := cfg.Sessions
	if n == 0 {
		n = 8
	}
	h := &HSM{cfg: cfg, p: p, pin: pin, label: cfg.TokenLabel, objs: map[objKey]pkcs11.ObjectHandle{},
		idle: make(chan session, n), sem: make(chan struct{}, n)}
	if err := h.findSlot(); err != nil {
		return nil, err
	}
	// Log in once now so a wrong PIN fails at start, not at first use.
	s, err := h.get(context.Background())
	if err != nil {
		return nil, err
	}
	h.oaep256 = h.probeOAEP256(s.h)
	h.put(s)
	return h, nil
}

// findSlot finds the token by label (under h.mu or before use).
func (h *HSM) findSlot() error {
	slots, err := h.p.GetSlotList(true)
	if err != nil {
		return fmt.Errorf("hsm: listing slots: %w", err)
	}
	for _, sl := range slots {
		ti, err := h.p.GetTokenInfo(sl)
		if err != nil {
			continue
		}
		if strings.TrimRight(ti.Label, " \x00") == h.label && ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED != 0 {
			h.slot = sl
			h.serial = strings.TrimRight(ti.SerialNumber, " \x00")
			h.model = strings.TrimSpace(strings.TrimRight(ti.ManufacturerID, " \x00") + " " + strings.TrimRight(ti.Model, " \x00"))
			return nil
		}
	}
	return fmt.Errorf("hsm: no initialized token labelled %q in %s", h.label, h.cfg.Module)
}

// probeOAEP256 tries CKM_RSA_PKCS_OAEP with SHA-256 on a session key.
func (h *HSM) probeOAEP256(s pkcs11.SessionHandle) bool {
	pub, priv, err := h.p.GenerateKeyPair(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, nil)},
		[]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false), pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, 1024),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}), pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true)},
		[]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false), pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true), pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true)})
	if err != nil {
		return false
	}
	defer h.p.DestroyObject(s, pub)
	defer h.p.DestroyObject(s, priv)
	ct := make([]byte, 128)
	ct[1] = 1
	if err := h.p.DecryptInit(s, oaepMech(crypto.SHA256), priv); err != nil {
		return false
	}
	_, _ = h.p.Decrypt(s, ct) // ends the operation; the result does not matter
	return true
}

func oaepMech(hh crypto.Hash) []*pkcs11.Mechanism {
	var mech, mgf uint = pkcs11.CKM_SHA_1, pkcs11.CKG_MGF1_SHA1
	switch hh {
	case crypto.SHA256:
		mech, mgf = pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256
	case crypto.SHA384:
		mech, mgf = pkcs11.CKM_SHA384, pkcs11.CKG_MGF1_SHA384
	}
	return []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_OAEP,
		pkcs11.NewOAEPParams(mech, mgf, pkcs11.CKZ_DATA_SPECIFIED, nil))}
}

// Name returns "pkcs11".
func (h *HSM) Name() string { return "pkcs11" }

// Platform names the token's maker and model, e.g. "pkcs11: SoftHSM
// project SoftHSM v2".
func (h *HSM) Platform() string { return "pkcs11: " + h.model }

// TokenLabel and TokenSerial identify the token.
func (h *HSM) TokenLabel() string  { return h.label }
func (h *HSM) TokenSerial() string { return h.serial }

// SupportsOAEP256 reports whether the token does RSA-OAEP with SHA-256
// itself (else the raw-RSA route of the package doc is used).
func (h *HSM) SupportsOAEP256() bool { return h.oaep256 }

// Close closes the pooled sessions. The module stays initialized for the
// process (other HSM values may use it).
func (h *HSM) Close() error {
	for {
		select {
		case s := <-h.idle:
			h.p.CloseSession(s.h)
			<-h.sem
		default:
			return nil
		}
	}
}

// --- sessions ---

func (h *HSM) get(ctx context.Context) (session, error) {
	select {
	case s := <-h.idle:
		return s, nil
	default:
	}
	select {
	case s := <-h.idle:
		return s, nil
	case h.sem <- struct{}{}:
		s, err := h.open()
		if err != nil {
			<-h.sem
			return session{}, err
		}
		return s, nil
	case <-ctx.Done():
		return session{}, ctx.Err()
	}
}

func (h *HSM) open() (session, error) {
	h.mu.Lock()
	slot := h.slot
	h.mu.Unlock()
	gen := h.gen.Load()
	sh, err := h.p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return session{}, fmt.Errorf("hsm: opening a session: %w", err)
	}
	// Login is per token and application: the first session logs in, the
	// others find it done (CRYPTO.md §1.4 pitfall 2).
	if err := h.p.Login(sh, pkcs11.CKU_USER, h.pin); err != nil && !isCKR(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
		h.p.CloseSession(sh)
		if isCKR(err, pkcs11.CKR_PIN_INCORRECT, pkcs11.CKR_PIN_LEN_RANGE) {
			return session{}, errors.New("hsm: the token refused the PIN")
		}
		return session{}, fmt.Errorf("hsm: logging in: %w", err)
	}
	return session{h: sh, gen: gen}, nil
}

func (h *HSM) put(s session) {
	if s.gen != h.gen.Load() {
		h.discard(s)
		return
	}
	h.idle <- s
}

func (h *HSM) discard(s session) {
	h.p.CloseSession(s.h)
	<-h.sem
}

// sessionLost reports errors after which the session (or the login, or
// the token itself) is gone: the token was reset, removed or re-inserted.
func sessionLost(err error) bool {
	return isCKR(err, pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED, pkcs11.CKR_USER_NOT_LOGGED_IN,
		pkcs11.CKR_DEVICE_REMOVED, pkcs11.CKR_TOKEN_NOT_PRESENT, pkcs11.CKR_TOKEN_NOT_RECOGNIZED,
		pkcs11.CKR_DEVICE_ERROR, pkcs11.CKR_SLOT_ID_INVALID)
}

func handleLost(err error) bool {
	return isCKR(err, pkcs11.CKR_OBJECT_HANDLE_INVALID, pkcs11.CKR_KEY_HANDLE_INVALID)
}

// recover drops every session and cached handle, finds the token again and
// lets the next session log in again.
func (h *HSM) recover() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gen.Add(1)
	clear(h.objs)
	for {
		select {
		case s := <-h.idle:
			h.discard(s)
			continue
		default:
		}
		break
	}
	_ = h.findSlot() // on failure the next open fails with the reason
}

// do runs fn on a pooled session. After a lost session it recovers and
// retries once; after a stale object handle it forgets the handles and
// retries once.
func (h *HSM) do(ctx context.Context, fn func(s pkcs11.SessionHandle) error) error {
	for attempt := 0; ; attempt++ {
		s, err := h.get(ctx)
		if err != nil {
			if attempt == 0 && sessionLost(err) {
				h.recover()
				continue
			}
			return err
		}
		err = fn(s.h)
		switch {
		case err != nil && sessionLost(err):
			h.discard(s)
			if attempt > 0 {
				return err
			}
			h.recover()
		case err != nil && handleLost(err) && attempt == 0:
			h.put(s)
			h.mu.Lock()
			clear(h.objs)
			h.mu.Unlock()
		default:
			h.put(s)
			return err
		}
	}
}

// find returns the object of a class with CKA_ID id, from the cache or
// the token (CRYPTO.md §1.4 pitfall 3: lookups are slow on SoftHSM).
func (h *HSM) find(s pkcs11.SessionHandle, id string, class uint) (pkcs11.ObjectHandle, error) {
	k := objKey{id, class}
	h.mu.Lock()
	o, ok := h.objs[k]
	h.mu.Unlock()
	if ok {
		return o, nil
	}
	found, err := h.findAll(s, id, class)
	if err != nil {
		return 0, err
	}
	if len(found) == 0 {
		return 0, errNotInToken
	}
	h.mu.Lock()
	h.objs[k] = found[0]
	h.mu.Unlock()
	return found[0], nil
}

func (h *HSM) findAll(s pkcs11.SessionHandle, id string, class uint) ([]pkcs11.ObjectHandle, error) {
	tmpl := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_ID, []byte(id))}
	if class != anyClass {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_CLASS, class))
	}
	if err := h.p.FindObjectsInit(s, tmpl); err != nil {
		return nil, err
	}
	found, _, err := h.p.FindObjects(s, 16)
	if ferr := h.p.FindObjectsFinal(s); err == nil {
		err = ferr
	}
	return found, err
}

const anyClass = ^uint(0)

var errNotInToken = errors.New("hsm: the key's object is not in the token (deleted, or another token)")

// --- generate ---

var curveOIDs = map[string][]byte{
	keys.CurveP256:  {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07},
	keys.CurveP384:  {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22},
	keys.CurveP521:  {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23},
	keys.CurveP256K: {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a},
}

// KtyOct is the key type of AES keys (oct-HSM without the suffix).
const KtyOct = "oct"

// usage derives the token usage flags from key_ops (nil: all of the type).
type usage struct{ sign, decrypt, unwrap, encrypt, wrap bool }

func usageOf(kty string, ku keys.Usage) usage {
	if ku == 0 {
		switch kty {
		case keys.KtyEC:
			return usage{sign: true}
		case KtyOct:
			return usage{encrypt: true, decrypt: true, wrap: true, unwrap: true}
		default:
			return usage{sign: true, decrypt: true}
		}
	}
	var u usage
	for op := range strings.SplitSeq("sign decrypt encrypt unwrapKey wrapKey import", " ") {
		if !ku.Has(op) {
			continue
		}
		switch op {
		case "sign":
			u.sign = true
		case "decrypt":
			u.decrypt = true
		case "encrypt":
			u.encrypt = true
		case "unwrapKey":
			// Key Vault's unwrapKey on an RSA key decrypts bytes
			// (C_Decrypt); on an AES key it is C_UnwrapKey.
			u.decrypt = true
			u.unwrap = u.unwrap || kty == KtyOct
		case "wrapKey":
			u.wrap = u.wrap || kty == KtyOct
			u.encrypt = u.encrypt || kty == KtyOct
		case "import":
			u.unwrap = true // a BYOK key exchange key
		}
	}
	return u
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x", b)
}

// privTemplate is the template of a private or secret token object.
func privTemplate(class, keyType uint, id string, u usage, exportable bool) []*pkcs11.Attribute {
	t := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, keyType),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, exportable),
		pkcs11.NewAttribute(pkcs11.CKA_ID, []byte(id)),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, "keyward:"+id),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, u.decrypt),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, u.unwrap),
	}
	if class == pkcs11.CKO_SECRET_KEY {
		return append(t, pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, u.encrypt), pkcs11.NewAttribute(pkcs11.CKA_WRAP, u.wrap))
	}
	return append(t, pkcs11.NewAttribute(pkcs11.CKA_SIGN, u.sign))
}

func pubTemplate(keyType uint, id string, u usage) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, keyType),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		pkcs11.NewAttribute(pkcs11.CKA_ID, []byte(id)),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, "keyward:"+id),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, u.sign),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, u.decrypt),
	}
}

// Generate creates a key in the token: RSA (2048/3072/4096), EC (P-256,
// P-384, P-521, P-256K where the token has the curve) or oct (AES 128,
// 192 or 256 bits). spec.ID becomes CKA_ID (a random ID when empty).
func (h *HSM) Generate(ctx context.Context, spec keys.Spec) ([]byte, keys.JWK, error) {
	id := spec.ID
	if id == "" {
		id = newID()
	}
	u := usageOf(spec.Kty, spec.Usage)
	if spec.Usage.Has("import") && !h.oaep256 {
		// A key exchange key on a token without RSA-OAEP-256/384 opens
		// RSA_AES_KEY_WRAP_256/384 blobs by raw RSA (ImportTransfer).
		u.decrypt = true
	}
	var pub keys.JWK
	var backup []byte
	err := h.do(ctx, func(s pkcs11.SessionHandle) error {
		if old, err := h.findAll(s, id, anyClass); err != nil || len(old) > 0 {
			return cmpErr(err, fmt.Errorf("%w: the token already holds a key with this ID", keys.ErrBadParameter))
		}
		var err error
		switch spec.Kty {
		case keys.KtyRSA:
			pub, err = h.genRSA(s, id, spec, u)
		case keys.KtyEC:
			pub, err = h.genEC(s, id, spec, u)
		case KtyOct:
			pub, err = h.genAES(s, id, spec, u)
		default:
			err = fmt.Errorf("%w: unsupported key type %.20q", keys.ErrBadParameter, spec.Kty)
		}
		if err == nil {
			backup, err = h.backupCopy(s, id, spec.Exportable)
		}
		return err
	})
	if err != nil {
		return nil, keys.JWK{}, err
	}
	hd, err := makeHandle(h.serial, h.label, id, pub, spec, backup)
	return hd, pub, err
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func (h *HSM) genRSA(s pkcs11.SessionHandle, id string, spec keys.Spec, u usage) (keys.JWK, error) {
	size := spec.Size
	if size == 0 {
		size = 2048
	}
	if size != 2048 && size != 3072 && size != 4096 || spec.Curve != "" {
		return keys.JWK{}, fmt.Errorf("%w: RSA key size %d, want 2048, 3072 or 4096", keys.ErrBadParameter, spec.Size)
	}
	if spec.PublicExponent != 0 && spec.PublicExponent != 65537 {
		return keys.JWK{}, fmt.Errorf("%w: RSA public exponent %d, only 65537 is supported", keys.ErrBadParameter, spec.PublicExponent)
	}
	pt := append(pubTemplate(pkcs11.CKK_RSA, id, u), pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, size),
		pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}))
	pubH, privH, err := h.p.GenerateKeyPair(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, nil)},
		pt, privTemplate(pkcs11.CKO_PRIVATE_KEY, pkcs11.CKK_RSA, id, u, true))
	if err != nil {
		return keys.JWK{}, fmt.Errorf("hsm: generating an RSA-%d key: %w", size, err)
	}
	j, err := h.rsaPublic(s, pubH)
	if err != nil {
		h.p.DestroyObject(s, pubH)
		h.p.DestroyObject(s, privH)
		return keys.JWK{}, err
	}
	h.cache(id, pkcs11.CKO_PRIVATE_KEY, privH)
	return j, nil
}

func (h *HSM) rsaPublic(s pkcs11.SessionHandle, o pkcs11.ObjectHandle) (keys.JWK, error) {
	a, err := h.p.GetAttributeValue(s, o, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil),
		pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, nil)})
	if err != nil {
		return keys.JWK{}, fmt.Errorf("hsm: reading the public key: %w", err)
	}
	j := keys.JWK{Kty: keys.KtyRSA, N: trimZero(a[0].Value), E: trimZero(a[1].Value)}
	if _, err := keys.FromJWK(j); err != nil {
		return keys.JWK{}, fmt.Errorf("hsm: the token's public key is not usable: %w", err)
	}
	return j, nil
}

func trimZero(b []byte) []byte {
	for len(b) > 1 && b[0] == 0 {
		b = b[1:]
	}
	return b
}

func (h *HSM) genEC(s pkcs11.SessionHandle, id string, spec keys.Spec, u usage) (keys.JWK, error) {
	crv := spec.Curve
	if crv == "" {
		crv = keys.CurveP256
	}
	oid, ok := curveOIDs[crv]
	if !ok || spec.Size != 0 || spec.PublicExponent != 0 {
		return keys.JWK{}, fmt.Errorf("%w: unknown curve %.20q", keys.ErrBadParameter, spec.Curve)
	}
	pt := append(pubTemplate(pkcs11.CKK_EC, id, usage{sign: u.sign}), pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, oid))
	pubH, privH, err := h.p.GenerateKeyPair(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_EC_KEY_PAIR_GEN, nil)},
		pt, privTemplate(pkcs11.CKO_PRIVATE_KEY, pkcs11.CKK_EC, id, usage{sign: u.sign}, true))
	if err != nil {
		if isCKR(err, pkcs11.CKR_CURVE_NOT_SUPPORTED, pkcs11.CKR_DOMAIN_PARAMS_INVALID, pkcs11.CKR_ATTRIBUTE_VALUE_INVALID,
			pkcs11.CKR_TEMPLATE_INCONSISTENT) {
			return keys.JWK{}, fmt.Errorf("%w: curve %s is not supported by this HSM (%s)", keys.ErrBadParameter, crv, h.model)
		}
		return keys.JWK{}, fmt.Errorf("hsm: generating a %s key: %w", crv, err)
	}
	j, err := h.ecPublic(s, pubH, crv)
	if err != nil {
		h.p.DestroyObject(s, pubH)
		h.p.DestroyObject(s, privH)
		return keys.JWK{}, err
	}
	h.cache(id, pkcs11.CKO_PRIVATE_KEY, privH)
	return j, nil
}

func (h *HSM) ecPublic(s pkcs11.SessionHandle, o pkcs11.ObjectHandle, crv string) (keys.JWK, error) {
	a, err := h.p.GetAttributeValue(s, o, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil)})
	if err != nil {
		return keys.JWK{}, fmt.Errorf("hsm: reading the public key: %w", err)
	}
	return ecPointJWK(crv, a[0].Value)
}

// ecPointJWK parses CKA_EC_POINT: a DER OCTET STRING around the
// uncompressed point (some tokens give the bare point).
func ecPointJWK(crv string, v []byte) (keys.JWK, error) {
	pt := v
	var raw []byte
	if rest, err := asn1.Unmarshal(v, &raw); err == nil && len(rest) == 0 {
		pt = raw
	}
	n := map[string]int{keys.CurveP256: 32, keys.CurveP256K: 32, keys.CurveP384: 48, keys.CurveP521: 66}[crv]
	if len(pt) != 1+2*n || pt[0] != 4 {
		return keys.JWK{}, errors.New("hsm: the token's EC point is not an uncompressed point")
	}
	j := keys.JWK{Kty: keys.KtyEC, Crv: crv, X: pt[1 : 1+n], Y: pt[1+n:]}
	if _, err := keys.FromJWK(j); err != nil {
		return keys.JWK{}, fmt.Errorf("hsm: the token's public key is not usable: %w", err)
	}
	return j, nil
}

func (h *HSM) genAES(s pkcs11.SessionHandle, id string, spec keys.Spec, u usage) (keys.JWK, error) {
	size := spec.Size
	if size == 0 {
		size = 256
	}
	if size != 128 && size != 192 && size != 256 || spec.Curve != "" {
		return keys.JWK{}, fmt.Errorf("%w: AES key size %d, want 128, 192 or 256", keys.ErrBadParameter, spec.Size)
	}
	t := append(privTemplate(pkcs11.CKO_SECRET_KEY, pkcs11.CKK_AES, id, u, true), pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, size/8))
	o, err := h.p.GenerateKey(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, t)
	if err != nil {
		return keys.JWK{}, fmt.Errorf("hsm: generating an AES-%d key: %w", size, err)
	}
	h.cache(id, pkcs11.CKO_SECRET_KEY, o)
	return keys.JWK{Kty: KtyOct}, nil
}

func (h *HSM) cache(id string, class uint, o pkcs11.ObjectHandle) {
	h.mu.Lock()
	h.objs[objKey{id, class}] = o
	h.mu.Unlock()
}

// --- import ---

// Import creates a token key from a private JWK, with a random ID. The
// vault layer calls ImportSpec.
func (h *HSM) Import(ctx context.Context, j keys.JWK) ([]byte, keys.JWK, error) {
	return h.ImportSpec(ctx, j, keys.Spec{})
}

// ImportSpec creates sensitive, non-extractable (unless spec.Exportable)
// token objects from a private RSA or EC JWK (C_CreateObject).
func (h *HSM) ImportSpec(ctx context.Context, j keys.JWK, spec keys.Spec) ([]byte, keys.JWK, error) {
	k, err := keys.FromJWK(j)
	if err != nil {
		return nil, keys.JWK{}, err
	}
	if !k.HasPrivate() {
		return nil, keys.JWK{}, fmt.Errorf("%w: import needs the private key", keys.ErrNoPrivateKey)
	}
	pub := k.Public()
	id := spec.ID
	if id == "" {
		id = newID()
	}
	u := usageOf(j.Kty, spec.Usage)
	var privT, pubT []*pkcs11.Attribute
	switch j.Kty {
	case keys.KtyRSA:
		d, p, q, dp, dq, qi, err := rsaPrivateParts(j)
		if err != nil {
			return nil, keys.JWK{}, err
		}
		privT = append(privTemplate(pkcs11.CKO_PRIVATE_KEY, pkcs11.CKK_RSA, id, u, true),
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, pub.N), pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, pub.E),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE_EXPONENT, d), pkcs11.NewAttribute(pkcs11.CKA_PRIME_1, p),
			pkcs11.NewAttribute(pkcs11.CKA_PRIME_2, q), pkcs11.NewAttribute(pkcs11.CKA_EXPONENT_1, dp),
			pkcs11.NewAttribute(pkcs11.CKA_EXPONENT_2, dq), pkcs11.NewAttribute(pkcs11.CKA_COEFFICIENT, qi))
		pubT = append(pubTemplate(pkcs11.CKK_RSA, id, u), pkcs11.NewAttribute(pkcs11.CKA_MODULUS, pub.N),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, pub.E))
	case keys.KtyEC:
		oid := curveOIDs[pub.Crv]
		point, _ := asn1.Marshal(slices.Concat([]byte{4}, pub.X, pub.Y))
		privT = append(privTemplate(pkcs11.CKO_PRIVATE_KEY, pkcs11.CKK_EC, id, usage{sign: u.sign}, true),
			pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, oid), pkcs11.NewAttribute(pkcs11.CKA_VALUE, j.D))
		pubT = append(pubTemplate(pkcs11.CKK_EC, id, usage{sign: u.sign}), pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, oid),
			pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, point))
	default:
		return nil, keys.JWK{}, fmt.Errorf("%w: unsupported key type %.20q", keys.ErrBadParameter, j.Kty)
	}
	var backup []byte
	err = h.do(ctx, func(s pkcs11.SessionHandle) error {
		if old, err := h.findAll(s, id, anyClass); err != nil || len(old) > 0 {
			return cmpErr(err, fmt.Errorf("%w: the token already holds a key with this ID", keys.ErrBadParameter))
		}
		privH, err := h.p.CreateObject(s, privT)
		if err != nil {
			return fmt.Errorf("hsm: creating the private key object: %w", err)
		}
		if _, err := h.p.CreateObject(s, pubT); err != nil {
			h.p.DestroyObject(s, privH)
			return fmt.Errorf("hsm: creating the public key object: %w", err)
		}
		h.cache(id, pkcs11.CKO_PRIVATE_KEY, privH)
		backup, err = h.backupCopy(s, id, spec.Exportable)
		return err
	})
	if err != nil {
		return nil, keys.JWK{}, err
	}
	hd, err := makeHandle(h.serial, h.label, id, pub, spec, backup)
	return hd, pub, err
}

// rsaPrivateParts returns the CRT parts of a validated private RSA JWK,
// computing dp, dq, qi when absent.
func rsaPrivateParts(j keys.JWK) (d, p, q, dp, dq, qi []byte, err error) {
	if len(j.P) == 0 || len(j.Q) == 0 {
		return nil, nil, nil, nil, nil, nil, fmt.Errorf("%w: an RSA private key needs p and q", keys.ErrBadKey)
	}
	if len(j.DP) > 0 && len(j.DQ) > 0 && len(j.QI) > 0 {
		return j.D, j.P, j.Q, j.DP, j.DQ, j.QI, nil
	}
	bd, bp, bq := new(big.Int).SetBytes(j.D), new(big.Int).SetBytes(j.P), new(big.Int).SetBytes(j.Q)
	one := big.NewInt(1)
	edp := new(big.Int).Mod(bd, new(big.Int).Sub(bp, one))
	edq := new(big.Int).Mod(bd, new(big.Int).Sub(bq, one))
	eqi := new(big.Int).ModInverse(bq, bp)
	return j.D, j.P, j.Q, edp.Bytes(), edq.Bytes(), eqi.Bytes(), nil
}

// --- handles ---

// Load returns the operator of a handle made by Generate or Import. The
// token object is looked up at first use.
func (h *HSM) Load(ctx context.Context, handle []byte) (keys.Operator, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var hv handleV1
	if err := json.Unmarshal(handle, &hv); err != nil || hv.V != 1 || hv.ID == "" {
		return nil, errors.New("hsm: not an HSM key handle")
	}
	if hv.Serial != h.serial {
		return nil, fmt.Errorf("hsm: the key is held by token %q (serial %s), not by the configured token %q (serial %s)",
			hv.Label, hv.Serial, h.label, h.serial)
	}
	o := &operator{h: h, id: hv.ID, jwk: hv.Public.jwk()}
	if hv.Public.Kty != KtyOct {
		pk, err := keys.FromJWK(o.jwk)
		if err != nil {
			return nil, err
		}
		o.pub = pk
	}
	return o, nil
}

// Holds reports whether handle names an object of this token.
func (h *HSM) Holds(handle []byte) bool {
	_, serial, err := ParseHandle(handle)
	return err == nil && serial == h.serial
}

// Destroy removes a key's objects from the token (purge).
func (h *HSM) Destroy(ctx context.Context, handle []byte) error {
	id, serial, err := ParseHandle(handle)
	if err != nil {
		return err
	}
	if serial != h.serial {
		return fmt.Errorf("hsm: the key is held by another token (serial %s)", serial)
	}
	return h.do(ctx, func(s pkcs11.SessionHandle) error {
		found, err := h.findAll(s, id, anyClass)
		if err != nil {
			return err
		}
		for _, o := range found {
			if err := h.p.DestroyObject(s, o); err != nil {
				return err
			}
		}
		h.mu.Lock()
		for k := range h.objs {
			if k.id == id {
				delete(h.objs, k)
			}
		}
		h.mu.Unlock()
		return nil
	})
}

// ObjectAttributes reads the boolean attributes of a key's private (or
// secret) object: CKA_SENSITIVE, CKA_EXTRACTABLE, CKA_TOKEN, CKA_PRIVATE,
// CKA_LOCAL, CKA_NEVER_EXTRACTABLE, CKA_ALWAYS_SENSITIVE, by name. Key
// attestation and tests use it.
func (h *HSM) ObjectAttributes(ctx context.Context, id string) (map[string]bool, error) {
	names := []struct {
		n string
		t uint
	}{{"CKA_SENSITIVE", pkcs11.CKA_SENSITIVE}, {"CKA_EXTRACTABLE", pkcs11.CKA_EXTRACTABLE}, {"CKA_TOKEN", pkcs11.CKA_TOKEN},
		{"CKA_PRIVATE", pkcs11.CKA_PRIVATE}, {"CKA_LOCAL", pkcs11.CKA_LOCAL}, {"CKA_NEVER_EXTRACTABLE", pkcs11.CKA_NEVER_EXTRACTABLE},
		{"CKA_ALWAYS_SENSITIVE", pkcs11.CKA_ALWAYS_SENSITIVE}}
	out := map[string]bool{}
	err := h.do(ctx, func(s pkcs11.SessionHandle) error {
		o, err := h.privObject(s, id)
		if err != nil {
			return err
		}
		tmpl := make([]*pkcs11.Attribute, len(names))
		for i, n := range names {
			tmpl[i] = pkcs11.NewAttribute(n.t, nil)
		}
		a, err := h.p.GetAttributeValue(s, o, tmpl)
		if err != nil {
			return err
		}
		for i, n := range names {
			out[n.n] = len(a[i].Value) == 1 && a[i].Value[0] != 0
		}
		return nil
	})
	return out, err
}

func (h *HSM) privObject(s pkcs11.SessionHandle, id string) (pkcs11.ObjectHandle, error) {
	o, err := h.find(s, id, pkcs11.CKO_PRIVATE_KEY)
	if errors.Is(err, errNotInToken) {
		o, err = h.find(s, id, pkcs11.CKO_SECRET_KEY)
	}
	return o, err
}

// --- operator ---

type operator struct {
	h   *HSM
	id  string
	jwk keys.JWK
	pub *keys.Key // nil for oct
}

func (o *operator) Public() keys.JWK { return o.jwk }

// Format shows only the key's identity.
func (o *operator) Format(f fmt.State, _ rune) { fmt.Fprintf(f, "hsm key %s (%s)", o.id, o.jwk.Kty) }

func (o *operator) needPub(alg string) error {
	if o.pub == nil {
		return fmt.Errorf("%w: %.20s with an AES key", keys.ErrUnsupportedAlgorithm, alg)
	}
	return nil
}

var digestInfoPrefix = map[crypto.Hash][]byte{
	crypto.SHA256: {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
	crypto.SHA384: {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30},
	crypto.SHA512: {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40},
}

var pssParams = map[string][3]uint{ // hash mechanism, MGF, salt length
	keys.AlgPS256: {pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256, 32},
	keys.AlgPS384: {pkcs11.CKM_SHA384, pkcs11.CKG_MGF1_SHA384, 48},
	keys.AlgPS512: {pkcs11.CKM_SHA512, pkcs11.CKG_MGF1_SHA512, 64},
}

var rsHash = map[string]crypto.Hash{keys.AlgRS256: crypto.SHA256, keys.AlgRS384: crypto.SHA384, keys.AlgRS512: crypto.SHA512}

// signMechs is the C_SignInit mechanism of each alg, built once: the
// binding only reads a Mechanism (it copies it into C memory per call), so
// one value serves every goroutine and a signature allocates none.
var signMechs = func() map[string][]*pkcs11.Mechanism {
	m := map[string][]*pkcs11.Mechanism{}
	for alg := range rsHash {
		m[alg] = []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)}
	}
	for alg, p := range pssParams {
		m[alg] = []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_PSS, pkcs11.NewPSSParams(p[0], p[1], p[2]))}
	}
	ecdsa := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)}
	for _, alg := range []string{keys.AlgES256, keys.AlgES384, keys.AlgES512, keys.AlgES256K} {
		m[alg] = ecdsa
	}
	return m
}()

// secp256k1 group order, for low-S normalization of ES256K.
var k1N, _ = new(big.Int).SetString("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141", 16)

func (o *operator) Sign(ctx context.Context, alg string, digest []byte) ([]byte, error) {
	if err := o.needPub(alg); err != nil {
		return nil, err
	}
	// The public key validates alg, key type and digest length exactly
	// as the software path does (without touching the key: a Verify with
	// an empty signature cost RSA a modulus precomputation per request).
	if err := o.pub.CheckSign(alg, digest); err != nil {
		return nil, err
	}
	mech := signMechs[alg]
	if mech == nil {
		return nil, fmt.Errorf("%w: %.20s", keys.ErrUnsupportedAlgorithm, alg)
	}
	input := digest
	if hh := rsHash[alg]; hh != 0 {
		input = slices.Concat(digestInfoPrefix[hh], digest)
	}
	var sig []byte
	err := o.h.do(ctx, func(s pkcs11.SessionHandle) error {
		k, err := o.h.find(s, o.id, pkcs11.CKO_PRIVATE_KEY)
		if err != nil {
			return err
		}
		if err := o.h.p.SignInit(s, mech, k); err != nil {
			return err
		}
		sig, err = o.h.p.Sign(s, input)
		return err
	})
	if err != nil {
		return nil, opError(alg, err)
	}
	if alg == keys.AlgES256K && len(sig) == 64 {
		sv := new(big.Int).SetBytes(sig[32:])
		if sv.Cmp(new(big.Int).Rsh(k1N, 1)) > 0 {
			sv.Sub(k1N, sv).FillBytes(sig[32:])
		}
	}
	return sig, nil
}

// opError words a token failure without data.
func opError(alg string, err error) error {
	switch {
	case errors.Is(err, errNotInToken), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case isCKR(err, pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED, pkcs11.CKR_KEY_TYPE_INCONSISTENT):
		return fmt.Errorf("%w: the HSM key was created without the usage %s needs (key_ops at creation)", keys.ErrUnsupportedAlgorithm, alg)
	case isCKR(err, pkcs11.CKR_MECHANISM_INVALID, pkcs11.CKR_MECHANISM_PARAM_INVALID):
		return fmt.Errorf("%w: %s is not supported by this HSM", keys.ErrUnsupportedAlgorithm, alg)
	}
	return fmt.Errorf("hsm: %s failed in the token: %w", alg, err)
}

func (o *operator) Verify(ctx context.Context, alg string, digest, sig []byte) (bool, error) {
	if err := o.needPub(alg); err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	return o.pub.Verify(alg, digest, sig)
}

func (o *operator) Encrypt(ctx context.Context, alg string, plaintext []byte) ([]byte, error) {
	if err := o.needPub(alg); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return o.pub.Encrypt(alg, plaintext)
}

func (o *operator) WrapKey(ctx context.Context, alg string, key []byte) ([]byte, error) {
	return o.Encrypt(ctx, alg, key)
}

func (o *operator) UnwrapKey(ctx context.Context, alg string, wrapped []byte) ([]byte, error) {
	return o.Decrypt(ctx, alg, wrapped)
}

func (o *operator) Decrypt(ctx context.Context, alg string, ciphertext []byte) ([]byte, error) {
	if err := o.needPub(alg); err != nil {
		return nil, err
	}
	// Validate alg and key type like the software path (an empty
	// plaintext always fits).
	if _, err := o.pub.Encrypt(alg, nil); err != nil {
		return nil, err
	}
	k := (o.pub.Size() + 7) / 8
	if len(ciphertext) != k {
		return nil, keys.ErrDecryption
	}
	var (
		mech []*pkcs11.Mechanism
		raw  hash.Hash
	)
	switch alg {
	case keys.AlgRSA15:
		mech = []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)}
	case keys.AlgRSAOAEP:
		mech = oaepMech(crypto.SHA1)
	case keys.AlgRSAOAEP256:
		if o.h.oaep256 {
			mech = oaepMech(crypto.SHA256)
		} else {
			mech, raw = []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_X_509, nil)}, sha256.New()
		}
	default:
		return nil, fmt.Errorf("%w: %.20s", keys.ErrUnsupportedAlgorithm, alg)
	}
	var pt []byte
	var tokenErr error
	err := o.h.do(ctx, func(s pkcs11.SessionHandle) error {
		key, err := o.h.find(s, o.id, pkcs11.CKO_PRIVATE_KEY)
		if err != nil {
			return err
		}
		if err := o.h.p.DecryptInit(s, mech, key); err != nil {
			return err
		}
		pt, tokenErr = o.h.p.Decrypt(s, ciphertext)
		if sessionLost(tokenErr) || handleLost(tokenErr) {
			return tokenErr
		}
		return nil
	})
	if err != nil {
		return nil, opError(alg, err)
	}
	if tokenErr != nil {
		// Every failure that depends on the ciphertext reads the same.
		return nil, keys.ErrDecryption
	}
	if raw != nil {
		em := make([]byte, k)
		if len(pt) > k {
			return nil, keys.ErrDecryption
		}
		copy(em[k-len(pt):], pt)
		clear(pt)
		return oaepDecode(raw, k, em)
	}
	return pt, nil
}

// --- SoftHSM2 helpers (dev server, tests) ---

func module2(path string) (*pkcs11.Ctx, error) { return module(path) }

// tokenExists reports whether an initialized token has the label.
func tokenExists(path, label string) (bool, error) {
	p, err := module(path)
	if err != nil {
		return false, err
	}
	h := &HSM{p: p, label: label, cfg: Config{Module: path}}
	return h.findSlot() == nil, nil
}

// initToken initializes a token in the module's first uninitialized slot
// and sets its user PIN (C_InitToken, C_InitPIN), in this process so the
// library sees it.
func initToken(path, label, soPIN, userPIN string) error {
	p, err := module(path)
	if err != nil {
		return err
	}
	slots, err := p.GetSlotList(true)
	if err != nil {
		return fmt.Errorf("hsm: listing slots: %w", err)
	}
	for _, sl := range slots {
		ti, err := p.GetTokenInfo(sl)
		if err != nil || ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED != 0 {
			continue
		}
		if err := p.InitToken(sl, soPIN, label); err != nil {
			return fmt.Errorf("hsm: initializing a token: %w", err)
		}
		// The slot may be renumbered after initialization: find by label.
		h := &HSM{p: p, label: label, cfg: Config{Module: path}}
		if err := h.findSlot(); err != nil {
			return err
		}
		s, err := p.OpenSession(h.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if err != nil {
			return fmt.Errorf("hsm: opening a session: %w", err)
		}
		defer p.CloseSession(s)
		if err := p.Login(s, pkcs11.CKU_SO, soPIN); err != nil {
			return fmt.Errorf("hsm: logging in as SO: %w", err)
		}
		defer p.Logout(s)
		if err := p.InitPIN(s, userPIN); err != nil {
			return fmt.Errorf("hsm: setting the user PIN: %w", err)
		}
		return nil
	}
	return errors.New("hsm: the module has no free slot for a new token")
}
