#!/usr/bin/env bash
# Builds the default image's root filesystem, offline, from Debian's busybox-static:
# a shell, every busybox applet, /etc/passwd with root and nobody. Writes a tar to $1.
set -euo pipefail
out=${1:?usage: build-busybox-image.sh OUT.tar}
bb=$(command -v busybox || true)
[ -n "$bb" ] || { echo "busybox not found: apt-get install busybox-static" >&2; exit 1; }
{ ldd "$bb" 2>&1 || true; } | grep -q 'not a dynamic' || { echo "$bb is not static: apt-get install busybox-static" >&2; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,home,var/tmp,proc,sys,dev}
cp "$bb" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
for applet in $("$bb" --list-full); do
  [ "$applet" = bin/busybox ] && continue
  mkdir -p "$root/$(dirname "$applet")"
  ln -sf /bin/busybox "$root/$applet"
done
chmod 0755 "$root"
chmod 1777 "$root/tmp" "$root/var/tmp"
chmod 0700 "$root/root"
cat > "$root/etc/passwd" <<P
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat > "$root/etc/group" <<G
root:x:0:
nogroup:x:65534:
G
echo "teu-busybox" > "$root/etc/hostname"
tar -C "$root" --numeric-owner --owner=0 --group=0 -cf "$out" .
echo "built $out ($(du -h "$out" | cut -f1))"
