#!/usr/bin/env bash
# Builds a Debian 12 (bookworm) base rootfs with python3 using debootstrap, from the machine's own
# Debian mirror (the one package registry it reaches), and writes it as a tar to $1.
# Exit 3 (and a message) when the mirror cannot be reached, so callers can skip cleanly.
set -euo pipefail
out=${1:?usage: build-debian-image.sh OUT.tar}
command -v debootstrap >/dev/null || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null
}
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
if ! debootstrap --variant=minbase --include=python3 bookworm "$root" "$mirror" >"$root.log" 2>&1; then
  if grep -qiE "failed|couldn't download|resolve|unreachable" "$root.log"; then
    echo "debootstrap could not reach $mirror (see $root.log)" >&2; exit 3
  fi
  cat "$root.log" >&2; exit 1
fi
rm -f "$root.log"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
# /dev is made by the OCI runtime at start; device nodes in an image are refused on import anyway
tar -C "$root" --numeric-owner --xattrs --exclude="./dev/*" -cf "$out" .
echo "built $out ($(du -h "$out" | cut -f1))"
