//go:build cgo

package bench

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/miekg/pkcs11"
)

// The raw side of the HSM operations: the same token object the server
// signs with, signed in this process by bare PKCS#11 calls (C_SignInit +
// C_Sign on one session per goroutine, the object handle found once), with
// the session flags Keyward's pool uses. The token is the dev server's
// SoftHSM2 token (dev.json "hsm"); SoftHSM2 runs inside whichever process
// calls it, so the server's CPU per request includes its signature and
// this process's CPU per op is the signature alone.

// digestInfoSHA256 is the DER prefix CKM_RSA_PKCS signs before a SHA-256
// digest for RS256 (RFC 8017 §9.2), as Keyward's HSM path sends it.
var digestInfoSHA256 = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}

// pkcs11Modules holds one initialized context per library: PKCS#11 allows
// one C_Initialize per process, and C_Finalize would end every other
// user's sessions (in tests the server runs in this process too).
var pkcs11Modules = struct {
	sync.Mutex
	m map[string]*pkcs11.Ctx
}{m: map[string]*pkcs11.Ctx{}}

func pkcs11Module(path string) (*pkcs11.Ctx, error) {
	pkcs11Modules.Lock()
	defer pkcs11Modules.Unlock()
	if p := pkcs11Modules.m[path]; p != nil {
		return p, nil
	}
	p := pkcs11.New(path)
	if p == nil {
		return nil, fmt.Errorf("cannot load the PKCS#11 module %s", path)
	}
	if err := p.Initialize(); err != nil && !isCKR(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		p.Destroy()
		return nil, fmt.Errorf("initializing %s: %w", path, err)
	}
	pkcs11Modules.m[path] = p
	return p, nil
}

func isCKR(err error, codes ...uint) bool {
	var e pkcs11.Error
	return errors.As(err, &e) && slices.Contains(codes, uint(e))
}

// hsmRaw signs with one object of the dev server's token.
type hsmRaw struct {
	d     DevHSM
	id    string // CKA_ID: the key version
	mech  []*pkcs11.Mechanism
	input []byte

	p    *pkcs11.Ctx
	slot uint
	obj  pkcs11.ObjectHandle

	mu       sync.Mutex
	sessions []pkcs11.SessionHandle
}

// newHSMRaw prepares the raw side of an HSM signature: es selects ECDSA
// over the digest, otherwise RSA PKCS #1 v1.5 over DigestInfo ‖ digest.
func newHSMRaw(d *DevHSM, version string, es bool, digest []byte) *hsmRaw {
	r := &hsmRaw{d: *d, id: version}
	if es {
		r.mech = []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)}
		r.input = slices.Clone(digest)
	} else {
		r.mech = []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)}
		r.input = slices.Concat(digestInfoSHA256, digest)
	}
	return r
}

// init loads the module (with the dev server's SoftHSM2 configuration),
// finds the token by label, logs in and finds the private key object by
// its CKA_ID. The session it logs in with stays open until close: a
// PKCS#11 login lasts while the application has a session.
func (r *hsmRaw) init() error {
	if c := r.d.SoftHSM2Conf; c != "" && os.Getenv("SOFTHSM2_CONF") != c {
		// Read by SoftHSM2's C_Initialize; a library this process has
		// initialized already keeps its first configuration, and the
		// token lookup below says so.
		if err := os.Setenv("SOFTHSM2_CONF", c); err != nil {
			return err
		}
	}
	p, err := pkcs11Module(r.d.Module)
	if err != nil {
		return err
	}
	r.p = p
	slots, err := p.GetSlotList(true)
	if err != nil {
		return fmt.Errorf("listing slots: %w", err)
	}
	found := false
	for _, s := range slots {
		if ti, err := p.GetTokenInfo(s); err == nil && strings.TrimRight(ti.Label, " \x00") == r.d.TokenLabel {
			r.slot, found = s, true
			break
		}
	}
	if !found {
		// SoftHSM2 reads its token directory once, at C_Initialize: a
		// token made later by another process is not in this process's
		// slot list.
		return fmt.Errorf("token %q not found by %s (SOFTHSM2_CONF %s; SoftHSM2 lists the tokens of its directory as they were when this process first loaded it)",
			r.d.TokenLabel, r.d.Module, os.Getenv("SOFTHSM2_CONF"))
	}
	s, err := r.session()
	if err != nil {
		return err
	}
	if err := p.Login(s, pkcs11.CKU_USER, r.d.UserPIN); err != nil && !isCKR(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
		return fmt.Errorf("logging in to the token: %w", err)
	}
	if err := p.FindObjectsInit(s, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_ID, []byte(r.id)),
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
	}); err != nil {
		return err
	}
	objs, _, err := p.FindObjects(s, 2)
	p.FindObjectsFinal(s)
	if err != nil {
		return err
	}
	if len(objs) != 1 {
		return fmt.Errorf("the token holds %d private keys with CKA_ID %s, want 1", len(objs), r.id)
	}
	r.obj = objs[0]
	// One signature now, so that a mechanism the token refuses fails
	// here and not as a silent zero in the raw run.
	if err := r.sign(s); err != nil {
		return fmt.Errorf("raw PKCS#11 signature: %w", err)
	}
	return nil
}

// session opens a read-write session (the flags Keyward's pool uses).
func (r *hsmRaw) session() (pkcs11.SessionHandle, error) {
	s, err := r.p.OpenSession(r.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return 0, fmt.Errorf("opening a session: %w", err)
	}
	r.mu.Lock()
	r.sessions = append(r.sessions, s)
	r.mu.Unlock()
	return s, nil
}

func (r *hsmRaw) sign(s pkcs11.SessionHandle) error {
	if err := r.p.SignInit(s, r.mech, r.obj); err != nil {
		return err
	}
	_, err := r.p.Sign(s, r.input)
	return err
}

// each returns one goroutine's signer, on its own session.
func (r *hsmRaw) each() func() error {
	s, err := r.session()
	if err != nil {
		return func() error { return err }
	}
	return func() error { return r.sign(s) }
}

// close closes this process's sessions (the server's are its own).
func (r *hsmRaw) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.sessions {
		r.p.CloseSession(s)
	}
	r.sessions = nil
}
