#!/usr/bin/env bash
# Vendors xterm.js (the web page's terminal) from the npm registry into services/web/teu_web/static/vendor/xterm:
# the version pinned here, its MIT licence with it, nothing fetched by the page at run time (it works offline).
# Run it to update; the files are committed.
set -euo pipefail
version=6.0.0
here=$(cd "$(dirname "$0")/.." && pwd)
dest=$here/services/web/teu_web/static/vendor/xterm
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack "@xterm/xterm@$version" --silent >/dev/null && tar -xzf "xterm-xterm-$version.tgz")
mkdir -p "$dest"
cp "$tmp/package/lib/xterm.js" "$tmp/package/css/xterm.css" "$tmp/package/LICENSE" "$dest/"
echo "@xterm/xterm $version" > "$dest/VERSION"
echo "vendored @xterm/xterm $version into $dest"
