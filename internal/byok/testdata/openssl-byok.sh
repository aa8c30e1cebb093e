#!/bin/sh
# The classic manual BYOK recipe (CRYPTO.md §4.4), an independent producer
# of .byok files: OpenSSL wraps, Keyward unwraps.
#   openssl-byok.sh KEK_PUB_PEM TARGET_PKCS8_DER ENC KID > key.byok
# ENC: CKM_RSA_AES_KEY_WRAP (OAEP SHA-1), RSA_AES_KEY_WRAP_256, RSA_AES_KEY_WRAP_384.
set -eu
kek=$1 target=$2 enc=$3 kid=$4
case $enc in
CKM_RSA_AES_KEY_WRAP) md=sha1 ;;
RSA_AES_KEY_WRAP_256) md=sha256 ;;
RSA_AES_KEY_WRAP_384) md=sha384 ;;
*) echo "unknown enc $enc" >&2; exit 2 ;;
esac
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
openssl rand -out "$d/aes.key" 32
openssl pkeyutl -encrypt -pubin -inkey "$kek" -in "$d/aes.key" -out "$d/ek.bin" \
  -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:$md -pkeyopt rsa_mgf1_md:$md
openssl enc -id-aes256-wrap-pad -K "$(od -An -v -tx1 "$d/aes.key" | tr -d ' \n')" -iv A65959A6 \
  -in "$target" -out "$d/wk.bin"
ct=$(cat "$d/ek.bin" "$d/wk.bin" | basenc --base64url -w0 | tr -d =)
printf '{"schema_version":"1.0.0","header":{"kid":"%s","alg":"dir","enc":"%s"},"ciphertext":"%s","generator":"openssl recipe"}\n' \
  "$kid" "$enc" "$ct"
