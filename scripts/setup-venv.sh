#!/usr/bin/env bash
# Creates .venv with the pinned dependencies and installs the project's own distributions into it,
# editable: the contracts (api/python), the SDK and CLI (clients/python), and each service
# (services/*). pip writes the `teu` and `teu-engine` commands into .venv/bin. Idempotent.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}
venv=$here/.venv
dists=(api/python clients/python services/common services/runtime services/storage services/logs services/gateway services/engine services/dockerapi services/cri services/web)
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
stamp=$venv/.requirements
if ! cmp -s <(cd "$here" && cat requirements*.txt "${dists[@]/%//pyproject.toml}") "$stamp" 2>/dev/null; then
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements-dev.txt"
  # --no-deps: every third-party dependency is pinned in requirements.txt, installed just above.
  # editable_mode=compat: a plain path per distribution, where the default import hooks cost every
  # Python start (each teu command) about 15 ms.
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps --no-build-isolation --config-settings editable_mode=compat \
    "${dists[@]/#/-e$here/}"
  (cd "$here" && cat requirements*.txt "${dists[@]/%//pyproject.toml}") > "$stamp"
fi
# The `teu` command itself: pip's wrapper imports re before anything else (8 ms of every command),
# and site's processing of the venv costs 5 more; this one goes straight to the launcher
# (teu.cli.launch), isolated from the caller's PYTHON* settings, with the two folders it needs.
printf '#!%s -IS\nimport sys\n\nsys.path[:0] = ["%s", "%s"]\nfrom teu.cli.launch import main\n\nmain()\n' \
  "$venv/bin/python3" "$here/clients/python" "$here/api/python" > "$venv/bin/teu.new"
chmod 755 "$venv/bin/teu.new"
mv "$venv/bin/teu.new" "$venv/bin/teu"
