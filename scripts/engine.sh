#!/usr/bin/env bash
# start | stop | status of a Teu engine (the supervisor and its four services) in the background.
# TEU_ROOT and TEU_RUN move its state and sockets (defaults /var/lib/teu and /run/teu).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
run=${TEU_RUN:-/run/teu}
root=${TEU_ROOT:-/var/lib/teu}
pidfile=$run/engine.pid
alive() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
case ${1:-} in
  start)
    if alive; then echo "engine already running (pid $(cat "$pidfile"))"; exit 0; fi
    umask 077  # the state and what the engine writes are root's alone
    mkdir -p "$run" "$root"
    # Members of the teu group may use the API socket: that is root-equivalent, like Docker's group.
    getent group teu >/dev/null || groupadd --system teu
    # TEU_USERNS_REMAP=default: the user teuremap and 65536 subordinate ids past every range in use
    # (Docker makes dockremap the same way).
    if [ "${TEU_USERNS_REMAP:-}" = default ]; then
      getent passwd teuremap >/dev/null || useradd --system --no-create-home --shell /usr/sbin/nologin teuremap
      for f in /etc/subuid /etc/subgid; do
        touch "$f"
        grep -q '^teuremap:' "$f" && continue
        start=$(awk -F: 'BEGIN { m = 100000 } { if ($2 + $3 > m) m = $2 + $3 } END { print m }' "$f")
        echo "teuremap:$start:65536" >> "$f"
      done
    fi
    setsid "$here/.venv/bin/teu-engine" --root "$root" --run-dir "$run" </dev/null >>"$root/engine.log" 2>&1 &
    for _ in $(seq 1 150); do
      if "$here/.venv/bin/teu" -H "unix:$run/gateway.sock" info >/dev/null 2>&1; then
        echo "engine running (pid $(cat "$pidfile")); logs in $root/engine/"; exit 0
      fi
      sleep 0.1
    done
    echo "engine did not become ready in 15 s; see $root/engine/*.log" >&2; exit 1 ;;
  stop)
    if ! alive; then echo "engine not running"; exit 0; fi
    pid=$(cat "$pidfile"); kill -TERM "$pid"
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || { echo "engine stopped (containers keep running)"; exit 0; }; sleep 0.1; done
    echo "engine did not stop in 15 s" >&2; exit 1 ;;
  status)
    if alive; then echo "running (pid $(cat "$pidfile"))"; else echo "stopped"; exit 3; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
