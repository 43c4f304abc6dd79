#!/usr/bin/env bash
# Starts and stops a software TPM 2.0 (swtpm) on loopback for tests, the
# development server and CI.
#
#   hsm-sim/swtpm.sh start STATE_DIR   start (or keep) a swtpm whose state lives in STATE_DIR;
#                                      prints  CUSTOS_TPM=swtpm:127.0.0.1:PORT
#   hsm-sim/swtpm.sh stop STATE_DIR    stop it (the state stays: a restart is the same TPM)
#   hsm-sim/swtpm.sh status STATE_DIR  prints the address and exits 0 if it is running, 1 if not
#
# Ports are chosen free at the first start and kept in STATE_DIR/swtpm.env, so
# a restart after `stop` reuses them when it can. The command port speaks the
# mssim framing and raw TPM commands; the control port is the next one up.
# `--flags not-need-init,startup-clear` powers the TPM on and sends
# TPM2_Startup(CLEAR), as firmware does at boot.
set -euo pipefail

usage() { echo "usage: $0 start|stop|status STATE_DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
state=$2

# A free port P whose neighbour P+1 is free too: tpm2-tools' swtpm TCTI
# expects the control port right after the command port.
free_port_pair() {
  node -e '
    const net = require("node:net");
    const listen = (port) => new Promise((ok, no) => { const s = net.createServer(); s.once("error", no); s.listen(port, "127.0.0.1", () => ok(s)); });
    (async () => {
      for (let i = 0; i < 50; i++) {
        const a = await listen(0);
        const p = a.address().port;
        try { const b = await listen(p + 1); b.close(); a.close(); process.stdout.write(String(p)); return; } catch { a.close(); }
      }
      process.exit(1);
    })();'
}

running() {
  [ -f "$state/swtpm.pid" ] && kill -0 "$(cat "$state/swtpm.pid")" 2>/dev/null
}

address() {
  # shellcheck disable=SC1091
  . "$state/swtpm.env"
  echo "CUSTOS_TPM=swtpm:127.0.0.1:$SWTPM_PORT"
}

case "$cmd" in
start)
  command -v swtpm >/dev/null || { echo "swtpm is not installed (Debian: apt-get install swtpm swtpm-tools)" >&2; exit 3; }
  mkdir -p "$state"
  chmod 700 "$state"
  if running; then address; exit 0; fi
  for attempt in 1 2 3 4 5; do
    if [ "$attempt" -gt 1 ] || [ ! -f "$state/swtpm.env" ]; then
      port=$(free_port_pair)
      ctrl=$((port + 1))
      printf 'SWTPM_PORT=%s\nSWTPM_CTRL_PORT=%s\n' "$port" "$ctrl" >"$state/swtpm.env"
    fi
    # shellcheck disable=SC1091
    . "$state/swtpm.env"
    rm -f "$state/swtpm.pid"
    if swtpm socket --tpm2 \
      --server "type=tcp,port=$SWTPM_PORT,bindaddr=127.0.0.1" \
      --ctrl "type=tcp,port=$SWTPM_CTRL_PORT,bindaddr=127.0.0.1" \
      --tpmstate "dir=$state" \
      --flags not-need-init,startup-clear \
      --pid "file=$state/swtpm.pid" \
      --log "file=$state/swtpm.log" \
      --daemon 2>>"$state/swtpm.log"; then
      for _ in $(seq 50); do
        running && { address; exit 0; }
        sleep 0.05
      done
    fi
  done
  echo "swtpm did not start; see $state/swtpm.log" >&2
  exit 1
  ;;
stop)
  if running; then
    pid=$(cat "$state/swtpm.pid")
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$state/swtpm.pid"
  ;;
status)
  if running; then address; else exit 1; fi
  ;;
*) usage ;;
esac
