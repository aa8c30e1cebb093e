package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/errs"
)

// The device authorization grant (RFC 8628) is how people sign in from the
// CLI: `keyward login` (or azidentity's DeviceCodeCredential) asks for a
// code, the user opens {authority}/device in a browser and enters the code,
// their user name, password and TOTP code, and the CLI's polling returns a
// token. Pending codes live in memory on the node that issued them for 15
// minutes.

const (
	deviceCodeLifetime = 15 * time.Minute
	devicePollInterval = 5
	maxPendingDevices  = 10_000
)

type deviceCode struct {
	tenant   string
	clientID string
	resource string
	userCode string
	expires  time.Time
	userOID  string // set when approved
	done     bool
}

// userCodeAlphabet avoids look-alike characters.
const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

func newUserCode() string {
	b := make([]byte, 8)
	rand.Read(b)
	var s strings.Builder
	for i, c := range b {
		if i == 4 {
			s.WriteByte('-')
		}
		s.WriteByte(userCodeAlphabet[int(c)%len(userCodeAlphabet)])
	}
	return s.String()
}

func deviceKey(deviceCode string) string {
	sum := sha256.Sum256([]byte(deviceCode))
	return string(sum[:])
}

// deviceStart is a device authorization: the codes and where the user
// goes.
type deviceStart struct {
	deviceCode, userCode, uri string
}

// errDevicesFull: too many sign-ins are pending on this node.
var errDevicesFull = terr(errs.Unavailable, "temporarily_unavailable", 90033, "Too many pending sign-ins. Try again later.")

// startDevice begins a device sign-in of clientID for scope in tenant.
func (a *Authority) startDevice(ctx context.Context, tenant, clientID, scope string, resources []string) (*deviceStart, error) {
	if _, err := a.dir.Tenant(ctx, tenant); err != nil {
		return nil, terr(errs.BadParameter, "invalid_request", 90002, "Tenant '"+safe(tenant)+"' not found.")
	}
	if err := a.publicClient(ctx, tenant, clientID); err != nil {
		return nil, err
	}
	resource, err := a.resolveResource(ctx, tenant, resourceFromScope(scope), resources)
	if err != nil {
		return nil, err
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	dc := base64.RawURLEncoding.EncodeToString(raw)
	uc := newUserCode()
	now := a.clock.Now()
	a.ext.mu.Lock()
	defer a.ext.mu.Unlock()
	if a.ext.devices == nil {
		a.ext.devices, a.ext.userCode = map[string]*deviceCode{}, map[string]string{}
	}
	for k, d := range a.ext.devices {
		if now.After(d.expires) {
			delete(a.ext.userCode, d.userCode)
			delete(a.ext.devices, k)
		}
	}
	if len(a.ext.devices) >= maxPendingDevices {
		return nil, errDevicesFull
	}
	a.ext.devices[deviceKey(dc)] = &deviceCode{tenant: tenant, clientID: clientID, resource: resource, userCode: uc, expires: now.Add(deviceCodeLifetime)}
	a.ext.userCode[uc] = deviceKey(dc)
	return &deviceStart{deviceCode: dc, userCode: uc, uri: a.base + "device"}, nil
}

// grantDeviceCode answers the CLI's polling.
func (a *Authority) grantDeviceCode(ctx context.Context, r *tokenRequest, tenant string) (*tokenClaims, error) {
	key := deviceKey(r.form.Get("device_code"))
	now := a.clock.Now()
	a.ext.mu.Lock()
	d := a.ext.devices[key]
	if d != nil && (d.done || now.After(d.expires)) {
		delete(a.ext.devices, key)
		delete(a.ext.userCode, d.userCode)
		a.ext.mu.Unlock()
		return nil, terr(errs.BadParameter, "expired_token", 70020, "The device code has expired.")
	}
	if d == nil || !strings.EqualFold(d.tenant, tenant) || !strings.EqualFold(d.clientID, r.form.Get("client_id")) {
		a.ext.mu.Unlock()
		return nil, terr(errs.BadParameter, "invalid_grant", 70000, "The device code is not valid.")
	}
	if d.userOID == "" {
		a.ext.mu.Unlock()
		return nil, terr(errs.BadParameter, "authorization_pending", 70016, "The user has not yet completed sign-in.")
	}
	d.done = true
	delete(a.ext.devices, key)
	delete(a.ext.userCode, d.userCode)
	a.ext.mu.Unlock()
	u, err := a.dir.User(ctx, tenant, d.userOID)
	if err != nil || u.Disabled {
		return nil, terr(errs.BadParameter, "invalid_grant", 50034, "The user account does not exist in the directory.")
	}
	return userClaims(u, d.clientID, d.resource, "0"), nil
}

// signInError is a refused device sign-in: its kind, the audit reason
// and what the page tells the user.
type signInError struct {
	kind        errs.Kind
	reason, msg string
}

func (e *signInError) Error() string { return e.reason }

// deviceSignIn signs the user in for the pending code uc with password
// and, once enrolled, TOTP; the CLI's polling then gets the token.
func (a *Authority) deviceSignIn(ctx context.Context, uc, username, password, totp string) error {
	ev := audit.EventFrom(ctx)
	now := a.clock.Now()
	a.ext.mu.Lock()
	var d *deviceCode
	if key, ok := a.ext.userCode[uc]; ok {
		d = a.ext.devices[key]
	}
	a.ext.mu.Unlock()
	if d == nil || now.After(d.expires) || d.userOID != "" {
		return &signInError{errs.BadParameter, "unknown or expired user code", "That code is not valid or has expired. Start again from the CLI."}
	}
	ev.Caller.TenantID = d.tenant
	u, err := a.signInUser(ctx, d.tenant, username, password, totp)
	if err != nil {
		return err
	}
	ev.Caller.ObjectID = u.ObjectID
	a.ext.mu.Lock()
	if d.userOID == "" {
		d.userOID = u.ObjectID
	}
	a.ext.mu.Unlock()
	return nil
}

// signInUser checks a user's password and, once enrolled, TOTP code for
// an interactive sign-in (the device page, the authorize page): lockout
// after repeated failures, each TOTP code accepted once, a success
// clearing the count. It fills the request's audit event.
func (a *Authority) signInUser(ctx context.Context, tenant, username, password, totp string) (*User, error) {
	ev := audit.EventFrom(ctx)
	now := a.clock.Now()
	who := strings.ToLower(tenant + "|" + username)
	known, _ := a.dir.UserByName(ctx, tenant, username) // nil if no such user
	if a.lockedOut(who, now) || known != nil && known.signInLocked(now) {
		return nil, &signInError{errs.Throttled, "too many failed sign-ins", "Too many failed sign-ins for this user. Try again in a few minutes."}
	}
	unauthorized := oauthStatus(errs.Unauthorized) // the request's outcome, recorded with the write
	u, err := a.checkPassword(ctx, tenant, username, password)
	if err != nil {
		a.signInFailed(who, now)
		if known != nil {
			// The stored count commits with the request's audit event
			// (api's audit gate): that event says how the request ends.
			ev.Status, ev.Result, ev.Reason = unauthorized, audit.Unauthenticated, "invalid username or password"
			a.userSignInFailed(ctx, known, now)
		}
		return nil, &signInError{errs.Unauthorized, "invalid username or password", "The user name or password is incorrect."}
	}
	if u.MFAEnrolled() {
		step, ok := VerifyTOTP(u.TOTPSecret, totp, now, u.LastTOTPStep)
		if !ok {
			a.signInFailed(who, now)
			ev.Status, ev.Result, ev.Reason = unauthorized, audit.Unauthenticated, "invalid second factor"
			a.userSignInFailed(ctx, u, now)
			return nil, &signInError{errs.Unauthorized, "invalid second factor", "The authenticator code is incorrect."}
		}
		// Record the step: each code is accepted once. A sign-in that
		// succeeds clears the failures.
		if _, err := a.dir.UpdateUser(ctx, u.TenantID, u.ObjectID, func(x *User) error {
			if step <= x.LastTOTPStep {
				return errTOTPReplay
			}
			x.LastTOTPStep = step
			x.FailedSignIns, x.FailedSince = 0, time.Time{}
			return nil
		}); err != nil {
			return nil, &signInError{errs.Unauthorized, "second factor replayed", "The authenticator code is incorrect."}
		}
	} else if u.FailedSignIns > 0 {
		// Best effort: a count left behind only expires with its window.
		a.dir.UpdateUser(ctx, u.TenantID, u.ObjectID, func(x *User) error {
			x.FailedSignIns, x.FailedSince = 0, time.Time{}
			return nil
		})
	}
	ev.Caller.ObjectID = u.ObjectID
	return u, nil
}

var errTOTPReplay = &ErrInvalid{Msg: "the authenticator code was already used"}

// Failed sign-ins are counted per user: after maxSignInFailures within
// signInWindow the user's sign-ins are refused until the window passes,
// which bounds online guessing of passwords and TOTP codes.
//
// An existing user's count is stored with the user, so it holds across the
// nodes of a cluster and cannot be flushed. Each node also counts failures
// per name in memory, which covers names that are not users (so that the
// lockout does not tell which names exist) and is bounded: when it is full,
// entries whose window has passed go first, then everything — which can
// only reset the counts of names that are not users.
const (
	maxSignInFailures = 10
	signInWindow      = 15 * time.Minute
	maxTrackedNames   = 100_000
)

// signInLocked reports whether u's stored failures lock it out at now.
func (u *User) signInLocked(now time.Time) bool {
	return u.FailedSignIns >= maxSignInFailures && now.Sub(u.FailedSince) <= signInWindow
}

// userSignInFailed adds a failure to u's stored count. The sign-in fails
// whether or not that can be stored; if storage cannot be written, it
// cannot be read to check a password either.
func (a *Authority) userSignInFailed(ctx context.Context, u *User, now time.Time) {
	a.dir.UpdateUser(ctx, u.TenantID, u.ObjectID, func(x *User) error {
		if now.Sub(x.FailedSince) > signInWindow {
			x.FailedSignIns, x.FailedSince = 0, now
		}
		x.FailedSignIns++
		return nil
	})
}

type signInFailures struct {
	count int
	first time.Time
}

func (a *Authority) lockedOut(who string, now time.Time) bool {
	a.ext.mu.Lock()
	defer a.ext.mu.Unlock()
	f := a.ext.failures[who]
	if f == nil || now.Sub(f.first) > signInWindow {
		return false
	}
	return f.count >= maxSignInFailures
}

func (a *Authority) signInFailed(who string, now time.Time) {
	a.ext.mu.Lock()
	defer a.ext.mu.Unlock()
	if a.ext.failures == nil {
		a.ext.failures = map[string]*signInFailures{}
	}
	if len(a.ext.failures) >= maxTrackedNames {
		for k, f := range a.ext.failures {
			if now.Sub(f.first) > signInWindow {
				delete(a.ext.failures, k)
			}
		}
		if len(a.ext.failures) >= maxTrackedNames {
			clear(a.ext.failures)
		}
	}
	f := a.ext.failures[who]
	if f == nil || now.Sub(f.first) > signInWindow {
		f = &signInFailures{first: now}
		a.ext.failures[who] = f
	}
	f.count++
}
