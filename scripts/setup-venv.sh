#!/usr/bin/env bash
# Creates .venv with the pinned dependencies, puts the source folders on its path (teu is a
# namespace package spread over clients/python and services/*), and writes the `teu` and
# `teu-engine` commands into .venv/bin. Idempotent.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}
venv=$here/.venv
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
stamp=$venv/.requirements
if ! cmp -s <(cat "$here"/requirements*.txt) "$stamp" 2>/dev/null; then
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements-dev.txt"
  cat "$here"/requirements*.txt > "$stamp"
fi
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
{
  echo "$here/clients/python"
  for d in common runtime storage logs gateway; do echo "$here/services/$d"; done
} > "$site/teu-src.pth"
write_cmd() {
  cat > "$venv/bin/$1" <<EOT
#!$venv/bin/python
from $2 import main
main()
EOT
  chmod +x "$venv/bin/$1"
}
write_cmd teu teu.cli.main
write_cmd teu-engine teu.engine.__main__
