package audit

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"
)

func marshalBoth(t *testing.T, e *Event) {
	t.Helper()
	want, wantErr := json.Marshal(e)
	got, gotErr := e.AppendJSON([]byte("prefix"))
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("error mismatch: AppendJSON %v, json.Marshal %v\nevent %#v", gotErr, wantErr, e)
	}
	if wantErr != nil {
		if string(got) != "prefix" {
			t.Fatalf("AppendJSON changed the buffer on error: %q", got)
		}
		return
	}
	if !bytes.Equal(got, append([]byte("prefix"), want...)) {
		t.Fatalf("AppendJSON differs from json.Marshal\n got: %s\nwant: prefix%s", got, want)
	}
}

// fillAll sets every string, int and float field of e (nested structs
// included) through reflection, so that a field added to Event and not to
// AppendJSON fails this test.
func fillAll(v reflect.Value, s string) {
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString(s + v.Type().Field(i).Name)
		case reflect.Int, reflect.Int64, reflect.Int32:
			f.SetInt(int64(i) + 400)
		case reflect.Float64:
			f.SetFloat(float64(i) + 0.125)
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Pointer:
			// Pointer fields (Approval) make AppendJSON defer to
			// json.Marshal; "approval set" below covers them.
		case reflect.Struct:
			if f.Type() == reflect.TypeOf(time.Time{}) {
				f.Set(reflect.ValueOf(time.Date(2026, 11, 23, 12, 0, 0, 123456789, time.UTC)))
				continue
			}
			fillAll(f, s)
		default:
			panic("audit: Event has a field of kind " + f.Kind().String() + ": teach AppendJSON and this test about it")
		}
	}
}

func TestAppendJSONMatchesMarshal(t *testing.T) {
	full := new(Event)
	fillAll(reflect.ValueOf(full).Elem(), "x<&>\u2028\"\\\n\x01\xff")
	base := Event{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), RequestID: "r", Service: "vault",
		Operation: "SecretGet", Method: "GET", Path: "/secrets/a/", Status: 200, Result: Allowed, LatencyMS: 0.412}
	cet := time.FixedZone("CET", 3600)
	lmt := time.FixedZone("LMT", 17*60+30)
	for name, e := range map[string]*Event{
		"zero": {},
		"approval set": func() *Event {
			e := base
			e.Approval = &Approval{ID: "q", Requester: "r", Approvers: []string{"a", "b"}, Outcome: "executed"}
			return &e
		}(),
		"full":           full,
		"typical":        &base,
		"caller partial": func() *Event { e := base; e.Caller = Caller{IP: "::1"}; return &e }(),
		"caller two":     func() *Event { e := base; e.Caller = Caller{ObjectID: "o", IP: "1.2.3.4"}; return &e }(),
		"zone":           func() *Event { e := base; e.Time = e.Time.In(cet); return &e }(),
		"zone seconds":   func() *Event { e := base; e.Time = e.Time.In(lmt); return &e }(),
		"zone 24h":       func() *Event { e := base; e.Time = e.Time.In(time.FixedZone("X", 24*3600)); return &e }(),
		"year 10000":     func() *Event { e := base; e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC); return &e }(),
		"year -1":        func() *Event { e := base; e.Time = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC); return &e }(),
		"tiny latency":   func() *Event { e := base; e.LatencyMS = 1e-7; return &e }(),
		"huge latency":   func() *Event { e := base; e.LatencyMS = 1e22; return &e }(),
		"negative":       func() *Event { e := base; e.LatencyMS = -3.5; e.Status = -1; return &e }(),
		"NaN":            func() *Event { e := base; e.LatencyMS = math.NaN(); return &e }(),
		"Inf":            func() *Event { e := base; e.LatencyMS = math.Inf(1); return &e }(),
		"controls": func() *Event {
			e := base
			e.UserAgent = "\b\f\n\r\t\x00\x1f\x7f<script>&amp;\u2029é😀\xc3"
			return &e
		}(),
	} {
		t.Run(name, func(t *testing.T) { marshalBoth(t, e) })
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("r", "ua", "/p", "1.2.3.4", int64(1767225600123456789), 0, 0.5, 200)
	f.Add("\xff\u2028<", "\x00", "\\\"", "", int64(-62135596800000000), 3600, 1e-9, -1)
	f.Fuzz(func(t *testing.T, id, ua, path, ip string, nanos int64, off int, lat float64, status int) {
		e := &Event{
			Time: time.Unix(0, nanos).In(time.FixedZone("z", off%(48*3600))), RequestID: id,
			Caller: Caller{IP: ip, TenantID: ua}, Service: path, Operation: id, Method: ua, Path: path,
			Status: status, Result: Result(ua), ErrorCode: ip, LatencyMS: lat, UserAgent: ua, Vault: path,
		}
		marshalBoth(t, e)
	})
}

func BenchmarkEncodeEvent(b *testing.B) {
	e := &Event{Time: time.Now().UTC(), RequestID: "0b6f7c1e-2a5d-4c4f-9e61-6a1d0c7a9e55",
		Caller:  Caller{TenantID: "7f0b5a9e-1c2d-4e3f-8a9b-0c1d2e3f4a5b", ObjectID: "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f", AppID: "2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a", IP: "127.0.0.1"},
		Service: "vault", Vault: "dev", Operation: "SecretGet", ObjectID: "https://dev.vault.localhost:8443/secrets/bench/0123456789abcdef0123456789abcdef",
		Method: "GET", Path: "/secrets/bench/", APIVersion: "7.6", Status: 200, Result: Allowed, LatencyMS: 0.412, UserAgent: "azsdk-go-azsecrets/v1.5.1 (go1.26.8; linux)"}
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			json.Marshal(e)
		}
	})
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 1024)
		for b.Loop() {
			buf, _ = e.AppendJSON(buf[:0])
		}
	})
}
