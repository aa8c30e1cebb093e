package identity

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// Argon2id parameters: OWASP's recommended minimum (19 MiB, 2 passes, 1
// lane), so that a sign-in costs tens of milliseconds on a small server;
// hashes record their parameters, so they can be raised later without
// invalidating stored ones.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

// CheckPassword enforces a minimal password policy.
func CheckPassword(pw string) error {
	if len(pw) < 12 || len(pw) > 256 {
		return invalid("a password must be 12-256 characters")
	}
	return nil
}

// HashPassword returns an argon2id hash in PHC string format.
func HashPassword(pw string) (string, error) {
	salt := make([]byte, 16)
	rand.Read(salt)
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// VerifyPassword checks pw against a PHC argon2id hash in constant time.
// A malformed hash never matches.
func VerifyPassword(hash, pw string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m > 1<<21 || t > 16 || p == 0 {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 || len(want) > 64 {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// TOTP (RFC 6238 with the RFC 4226 HOTP truncation): HMAC-SHA1, 30-second
// steps, 6 digits, as every authenticator app implements it.
const (
	totpStep   = 30
	totpDigits = 6
)

// NewTOTPSecret returns a random 160-bit TOTP secret and its otpauth URI
// (for a QR code) and base32 form (for typing).
func NewTOTPSecret(issuer, account string) (secret []byte, b32, uri string) {
	secret = make([]byte, 20)
	rand.Read(secret)
	b32 = base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(secret)
	uri = "otpauth://totp/" + urlEscape(issuer) + ":" + urlEscape(account) + "?secret=" + b32 +
		"&issuer=" + urlEscape(issuer) + "&algorithm=SHA1&digits=6&period=30"
	return secret, b32, uri
}

func urlEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '@' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// TOTPCode returns the code for secret at step counter.
func TOTPCode(secret []byte, counter int64) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(counter))
	mac := hmac.New(sha1.New, secret)
	mac.Write(msg[:])
	sum := mac.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	return fmt.Sprintf("%0*d", totpDigits, v%1000000)
}

// TOTPStep is the RFC 6238 time step of t.
func TOTPStep(t time.Time) int64 { return t.Unix() / totpStep }

// VerifyTOTP checks code against secret at now, allowing one step of clock
// drift either way. It returns the matched step, which the caller stores
// and passes as lastStep next time: a code is accepted at most once.
func VerifyTOTP(secret []byte, code string, now time.Time, lastStep int64) (int64, bool) {
	code = strings.TrimSpace(code)
	if len(code) != totpDigits {
		return 0, false
	}
	cur := TOTPStep(now)
	var matched int64
	ok := 0
	for _, s := range []int64{cur - 1, cur, cur + 1} {
		eq := subtle.ConstantTimeCompare([]byte(TOTPCode(secret, s)), []byte(code))
		if eq == 1 && s > lastStep {
			matched = s
			ok = 1
		}
	}
	return matched, ok == 1
}
