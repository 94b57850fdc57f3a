#!/usr/bin/env bash
# Installs the host packages Teu needs, only those missing (Debian 12): the OCI runtimes, conmon,
# busybox-static for the default image, nftables and iptables for published ports, tini for --init, plus any package named as an argument (make bench: podman). Idempotent.
set -euo pipefail
want=(runc crun conmon busybox-static nftables iptables tini "$@")
missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
if [ "$(id -u)" != 0 ]; then echo "run as root to install ${missing[*]}" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
# What is installed here is never started as a system service (a registry, Prometheus): the tests
# and benchmarks start what they need themselves, on loopback, in their own directories.
guard=/usr/sbin/policy-rc.d
if [ ! -e "$guard" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$guard" && chmod +x "$guard"
  trap 'rm -f "$guard"' EXIT
fi
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
