#!/usr/bin/env bash
# Secret reads against a spawned `keyward server --dev`, driven by h2load
# (Debian nghttp2-client) over HTTP/1.1 (16 connections), HTTP/2 (1
# connection x 16 streams) and HTTP/2 (16 connections x 1 stream), with the
# server's CPU per request from /proc/PID/stat (docs/PERFORMANCE.md).
# usage: scripts/bench-h2load.sh KEYWARD_BINARY [SECONDS]
set -euo pipefail
BIN=$1; SECS=${2:-10}
D=$(mktemp -d)
$BIN server --dev --listen 127.0.0.1:0 --data $D --log-level warn >$D/srv.log 2>&1 &
PID=$!
trap "kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf $D" EXIT
for i in $(seq 50); do [ -f $D/dev.json ] && break; sleep 0.2; done
sleep 0.5
eval "$(python3 - $D/dev.json <<'PY'
import json,sys
d=json.load(open(sys.argv[1]))
host,port=d['listen'].rsplit(':',1)
print(f"PORT={port}; TENANT={d['tenant_id']}; CID={d['client_id']}; CS={d['client_secret']}; CA={d['ca_file']}")
PY
)"
VH=dev.vault.localhost:$PORT
R="--resolve dev.vault.localhost:$PORT:127.0.0.1 --resolve localhost:$PORT:127.0.0.1"
TOK=$(curl -s $R --cacert $CA -d grant_type=client_credentials -d client_id=$CID --data-urlencode client_secret=$CS \
  --data-urlencode "scope=https://vault.localhost:$PORT/.default" https://localhost:$PORT/$TENANT/oauth2/v2.0/token | python3 -c 'import json,sys;print(json.load(sys.stdin)["access_token"])')
curl -s $R --cacert $CA -X PUT -H "Authorization: Bearer $TOK" -H 'Content-Type: application/json' \
  -d '{"value":"0123456789012345678901234567890123456789012345678901234567890123"}' "https://$VH/secrets/bench?api-version=7.6" >/dev/null
URL="https://127.0.0.1:$PORT/secrets/bench?api-version=7.6"
cpu() { awk '{print $14+$15}' /proc/$PID/stat; }
run() { # name, h2load args
  local name=$1; shift
  h2load -D 2 "$@" -H "Authorization: Bearer $TOK" -H ":authority: $VH" "$URL" >/dev/null 2>&1 || true # warm-up
  local c0=$(cpu)
  local out=$(h2load -D $SECS "$@" -H "Authorization: Bearer $TOK" -H ":authority: $VH" "$URL" 2>&1)
  local c1=$(cpu)
  local ok=$(echo "$out" | awk '/^requests:/{print $8}')
  local fail=$(echo "$out" | awk '/^requests:/{print $10}')
  local rps=$(echo "$out" | awk '/^finished in/{print $4}')
  local codes=$(echo "$out" | awk "/^status codes:/{print \$3}")
  local lat=$(echo "$out" | awk "/^time for request:/{print \$4, \$5, \$6}")
  echo "$name ok=$ok 2xx=$codes failed=$fail req/s=$rps server_us/req=$(python3 -c "print(round(($c1-$c0)*10000/max($ok,1),1))") latency(min,max,mean)=$lat"
}
run "h1 16conn" --h1 -c 16 -m 1
run "h2 1conn x16" -c 1 -m 16
run "h2 16conn x1" -c 16 -m 1
