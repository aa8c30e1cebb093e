package audit

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends e as encoding/json would marshal it, byte for byte
// (TestAppendJSONMatchesMarshal and FuzzAppendJSON hold it to that), without
// reflection: every request writes one event, so this is on the hot path.
// Values json.Marshal would refuse or that this encoder does not handle
// itself (a time outside years 0-9999, a NaN latency) go through
// json.Marshal, so the result, error included, is always Marshal's.
//
// A field added to Event must be added here too; the tests fail until it is.
func (e *Event) AppendJSON(b []byte) ([]byte, error) {
	n0 := len(b)
	b = append(b, `{"time":"`...)
	ts := len(b)
	b = e.Time.AppendFormat(b, time.RFC3339Nano)
	if !strictRFC3339(b[ts:]) || math.IsNaN(e.LatencyMS) || math.IsInf(e.LatencyMS, 0) || e.Approval != nil {
		raw, err := json.Marshal(e)
		if err != nil {
			return b[:n0], err
		}
		return append(b[:n0], raw...), nil
	}
	b = append(b, `","resourceId":`...)
	b = appendString(b, e.ResourceID)
	b = append(b, `,"operationName":`...)
	b = appendString(b, e.OperationName)
	b = append(b, `,"operationVersion":`...)
	b = appendString(b, e.OperationVersion)
	b = append(b, `,"category":`...)
	b = appendString(b, e.Category)
	b = append(b, `,"resultType":`...)
	b = appendString(b, e.ResultType)
	b = append(b, `,"resultSignature":`...)
	b = appendString(b, e.ResultSignature)
	b = append(b, `,"resultDescription":`...)
	b = appendString(b, e.ResultDescription)
	b = append(b, `,"durationMs":`...)
	b = strconv.AppendInt(b, e.DurationMS, 10)
	b = append(b, `,"callerIpAddress":`...)
	b = appendString(b, e.CallerIPAddress)
	b = append(b, `,"correlationId":`...)
	b = appendString(b, e.CorrelationID)
	b = append(b, `,"identity":{"claim":{`...)
	c := &e.Identity.Claim
	b = appendFields(b, []field{
		{`"http://schemas.microsoft.com/identity/claims/objectidentifier":`, c.ObjectID},
		{`"appid":`, c.AppID},
		{`"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn":`, c.UPN},
		{`"http://schemas.microsoft.com/identity/claims/tenantid":`, c.TenantID},
	})
	p := &e.Properties
	b = append(b, `}},"properties":{"id":`...)
	b = appendString(b, p.ID)
	b = append(b, `,"requestUri":`...)
	b = appendString(b, p.RequestURI)
	b = append(b, `,"httpStatusCode":`...)
	b = strconv.AppendInt(b, int64(p.HTTPStatusCode), 10)
	b = append(b, `,"clientInfo":`...)
	b = appendString(b, p.ClientInfo)
	b = append(b, `,"isRbacAuthorized":`...)
	b = strconv.AppendBool(b, p.IsRbacAuthorized)
	b = append(b, `,"isAccessPolicyMatch":`...)
	b = strconv.AppendBool(b, p.IsAccessPolicyMatch)
	b = append(b, `,"tlsVersion":`...)
	b = appendString(b, p.TLSVersion)
	b = append(b, `},"request_id":`...)
	b = appendString(b, e.RequestID)
	b = append(b, `,"caller":{`...)
	b = appendFields(b, []field{
		{`"tenant_id":`, e.Caller.TenantID}, {`"oid":`, e.Caller.ObjectID},
		{`"appid":`, e.Caller.AppID}, {`"upn":`, e.Caller.UPN}, {`"ip":`, e.Caller.IP},
	})
	b = append(b, `},"service":`...)
	b = appendString(b, e.Service)
	b = appendOpt(b, `,"vault":`, e.Vault)
	b = append(b, `,"operation":`...)
	b = appendString(b, e.Operation)
	b = appendOpt(b, `,"object_id":`, e.ObjectID)
	b = append(b, `,"method":`...)
	b = appendString(b, e.Method)
	b = append(b, `,"path":`...)
	b = appendString(b, e.Path)
	b = appendOpt(b, `,"api_version":`, e.APIVersion)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, `,"result":`...)
	b = appendString(b, string(e.Result))
	b = appendOpt(b, `,"error_code":`, e.ErrorCode)
	b = appendOpt(b, `,"reason":`, e.Reason)
	b = append(b, `,"latency_ms":`...)
	b = appendFloat(b, e.LatencyMS)
	b = appendOpt(b, `,"user_agent":`, e.UserAgent)
	b = appendOpt(b, `,"authz":`, e.Authz)
	b = appendOpt(b, `,"node":`, e.Node)
	if e.Seq != 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendInt(b, e.Seq, 10)
	}
	b = appendOpt(b, `,"prev":`, e.Prev)
	return append(b, '}'), nil
}

// strictRFC3339 repeats the checks time.Time's MarshalJSON makes on the
// RFC 3339 text it formats: a four-digit year, and a zone offset of hours
// 0-23 with no seconds.
func strictRFC3339(ts []byte) bool {
	n := len(ts)
	switch {
	case n < len("2006-01-02T15:04:05Z") || ts[4] != '-':
		return false
	case ts[n-1] == 'Z':
		return true
	}
	c := ts[n-len("Z07:00")]
	h := 10*int(ts[n-5]-'0') + int(ts[n-4]-'0')
	return !('0' <= c && c <= '9') && h < 24
}

type field struct{ name, v string }

// appendFields appends the non-empty fields, comma-separated (the
// members of an object whose fields are all omitempty strings).
func appendFields(b []byte, fs []field) []byte {
	first := true
	for _, f := range fs {
		if f.v == "" {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, f.name...)
		b = appendString(b, f.v)
	}
	return b
}

func appendOpt(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	return appendString(append(b, name...), v)
}

// appendFloat formats a float64 as encoding/json does (ES6 number style).
func appendFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendString quotes s as encoding/json does by default: HTML-safe (<, >
// and & escaped), control characters escaped, invalid UTF-8 replaced by
// U+FFFD, and U+2028 and U+2029 escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// AppendJSONString appends s quoted as encoding/json quotes a string by
// default (HTML-safe; see appendString), for other hand-written encoders
// on the request path.
func AppendJSONString(b []byte, s string) []byte { return appendString(b, s) }
