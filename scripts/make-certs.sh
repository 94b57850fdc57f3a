#!/usr/bin/env bash
# Development certificates for the gateway's mutual-TLS listener (`teu-engine --tls-listen`):
#   OUTDIR/ca.pem ca.key                  a private CA (keep ca.key to yourself)
#   OUTDIR/server.pem server.key          the gateway's certificate, for 127.0.0.1 and localhost
#   OUTDIR/<role>/ca.pem cert.pem key.pem a client of each role (admin, operator, viewer), laid out
#                                         for TEU_CERT_PATH=OUTDIR/<role>
# A client's role is its certificate's OU, its identity the CN (see teu/common/authz.py).
# Usage: scripts/make-certs.sh [OUTDIR]   (default build/certs). Idempotent: what exists is kept;
# a new CA re-issues everything it signs. Keys are 0600.
set -euo pipefail
out=${1:-build/certs}
days=825
umask 077
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; chmod 600 "$1"; }

# issue KEY CERT SUBJECT EXTENSIONS: a certificate signed by the CA.
issue() {
  newkey "$1"
  openssl req -new -key "$1" -subj "$3" -out "$tmp/req.csr"
  printf '%s\n' "$4" >"$tmp/ext.cnf"
  openssl x509 -req -in "$tmp/req.csr" -CA "$out/ca.pem" -CAkey "$out/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
    -days "$days" -sha256 -extfile "$tmp/ext.cnf" -out "$2" 2>/dev/null
  chmod 644 "$2"
}

if [ ! -s "$out/ca.pem" ] || [ ! -s "$out/ca.key" ]; then
  rm -rf "$out/server.pem" "$out/server.key" "$out/admin" "$out/operator" "$out/viewer"
  newkey "$out/ca.key"
  openssl req -x509 -new -key "$out/ca.key" -subj "/O=Teu/CN=Teu development CA" -days "$days" -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$out/ca.pem"
  chmod 644 "$out/ca.pem"
  echo "made $out/ca.pem"
fi

if [ ! -s "$out/server.pem" ] || [ ! -s "$out/server.key" ]; then
  issue "$out/server.key" "$out/server.pem" "/O=Teu/CN=localhost" \
    "$(printf '%s\n' 'basicConstraints=critical,CA:FALSE' 'keyUsage=critical,digitalSignature,keyEncipherment' \
      'extendedKeyUsage=serverAuth' 'subjectAltName=DNS:localhost,IP:127.0.0.1')"
  echo "made $out/server.pem"
fi

for role in admin operator viewer; do
  dir=$out/$role
  mkdir -p "$dir"
  if [ ! -s "$dir/cert.pem" ] || [ ! -s "$dir/key.pem" ]; then
    issue "$dir/key.pem" "$dir/cert.pem" "/O=Teu/OU=$role/CN=dev-$role" \
      "$(printf '%s\n' 'basicConstraints=critical,CA:FALSE' 'keyUsage=critical,digitalSignature' 'extendedKeyUsage=clientAuth')"
    echo "made $dir/cert.pem (CN=dev-$role, OU=$role)"
  fi
  cp "$out/ca.pem" "$dir/ca.pem"
  chmod 644 "$dir/ca.pem"
done
