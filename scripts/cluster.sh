#!/usr/bin/env bash
# A local cluster: REPLICAS app replicas on loopback ports behind Debian's haproxy, with
# cookie stickiness and WebSockets. `make cluster` / `make cluster-down` call this.
#
#   bash scripts/cluster.sh up      start, and return once every replica and the proxy are healthy
#   bash scripts/cluster.sh down    stop everything `up` started, by PID
#   bash scripts/cluster.sh status  print the PIDs and whether each one is alive
#
# Settings (environment):
#   REPLICAS                 replicas to start (default 3)
#   CLUSTER_PORT             the proxy's port (default 8600); students open http://<host>:CLUSTER_PORT
#   CLUSTER_BIND             the proxy's address (default 127.0.0.1; 0.0.0.0 to serve a school network);
#                            passed to the replicas as DIFFUSION_LENS_PUBLIC_ADDRESS, so that the classroom
#                            lock (app/session/sources.py) follows what the proxy exposes, not the replicas' 127.0.0.1
#   CLUSTER_REPLICA_PORT     first replica's port (default CLUSTER_PORT + 1); replicas use the next ones
#   CLUSTER_DIR              PID files, logs, haproxy.cfg and the cookie secret (default .cluster)
#   CLUSTER_TIMEOUT          seconds to wait for health (default 180)
#   CLUSTER_COOKIE_SECRET    server.cookieSecret shared by every replica (default: made once,
#                            kept in CLUSTER_DIR/cookie_secret, mode 600)
#   DIFFUSION_LENS_THREADS   torch threads per replica (default here 1, so 3 replicas fit 2 cores);
#   DIFFUSION_LENS_CONCURRENCY, DIFFUSION_LENS_MODEL and other variables pass through unchanged
#   PYTHON                   the interpreter that has streamlit (default .venv/bin/python)
#
# Files in CLUSTER_DIR: replicas.pid (one PID per line, in replica order), haproxy.pid,
# replica-N.log, haproxy.log (one line per request: replica, status, method, path, cookie),
# haproxy.cfg, haproxy.sock (stats socket), ports (one "rN PORT" line per replica).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
REPLICAS="${REPLICAS:-3}"
CLUSTER_PORT="${CLUSTER_PORT:-8600}"
CLUSTER_BIND="${CLUSTER_BIND:-127.0.0.1}"
CLUSTER_REPLICA_PORT="${CLUSTER_REPLICA_PORT:-$((CLUSTER_PORT + 1))}"
CLUSTER_DIR="${CLUSTER_DIR:-$ROOT/.cluster}"
CLUSTER_TIMEOUT="${CLUSTER_TIMEOUT:-180}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
AFFINITY_COOKIE="DLREPLICA"

haproxy_bin() {
    command -v haproxy 2>/dev/null || { [ -x /usr/sbin/haproxy ] && echo /usr/sbin/haproxy; } || true
}

# is_ours PID WORD: the process is alive and its command line contains WORD (guards against PID reuse)
is_ours() {
    [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -q -- "$2"
}

all_pids() {
    local f
    for f in "$CLUSTER_DIR/replicas.pid" "$CLUSTER_DIR/haproxy.pid"; do
        [ -f "$f" ] && grep -E '^[0-9]+$' "$f" || true
    done
}

down() {
    local pids=() pid word
    while read -r pid; do
        [ -n "$pid" ] && pids+=("$pid")
    done < <(all_pids)
    if [ "${#pids[@]}" -eq 0 ]; then
        echo "cluster: nothing to stop (no PID files in $CLUSTER_DIR)"
        return 0
    fi
    local stopping=()
    for pid in "${pids[@]}"; do
        word=streamlit
        grep -qx "$pid" "$CLUSTER_DIR/haproxy.pid" 2>/dev/null && word=haproxy
        if is_ours "$pid" "$word"; then
            kill -TERM "$pid" 2>/dev/null && stopping+=("$pid")
        fi
    done
    local waited=0
    while [ "$waited" -lt 150 ]; do
        local alive=0
        for pid in "${stopping[@]}"; do
            if kill -0 "$pid" 2>/dev/null; then alive=1; fi
        done
        [ "$alive" -eq 0 ] && break
        sleep 0.1
        waited=$((waited + 1))
    done
    for pid in "${stopping[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            echo "cluster: PID $pid ignored SIGTERM for 15 s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    rm -f "$CLUSTER_DIR/replicas.pid" "$CLUSTER_DIR/haproxy.pid" "$CLUSTER_DIR/haproxy.sock"
    echo "cluster: stopped ${#stopping[@]} process(es): ${stopping[*]:-none alive}"
}

status() {
    local pid state
    for pid in $(all_pids); do
        state=dead
        kill -0 "$pid" 2>/dev/null && state=alive
        echo "$pid $state"
    done
}

# wait_healthy N URL... PID...: every URL answers 200 (and, once the proxy runs, its stats
# socket shows every server UP) within CLUSTER_TIMEOUT, and no PID exits meanwhile
wait_healthy() {
    "$PYTHON" - "$CLUSTER_TIMEOUT" "$CLUSTER_DIR/haproxy.sock" "$@" <<'PY'
import os, socket, sys, time, urllib.request
timeout, sock_path, n = float(sys.argv[1]), sys.argv[2], int(sys.argv[3])
urls, pids = sys.argv[4 : 4 + n], [int(p) for p in sys.argv[4 + n :]]

def servers_down() -> list[str]:
    if not os.path.exists(sock_path):
        return []
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(sock_path)
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except OSError:
        return ["haproxy stats socket"]
    rows = [line.split(",") for line in data.decode().splitlines() if line and not line.startswith("#")]
    return [f"{r[1]} ({r[17]})" for r in rows if r[1] not in ("FRONTEND", "BACKEND") and r[17] != "UP"]

start, pending = time.monotonic(), list(urls)
while True:
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            sys.exit(f"cluster: PID {pid} exited before the cluster was healthy")
    for url in list(pending):
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    pending.remove(url)
        except OSError:
            pass
    down = servers_down() if not pending else []
    if not pending and not down:
        break
    if time.monotonic() - start > timeout:
        sys.exit(f"cluster: not healthy after {timeout:.0f} s: {', '.join(pending + down)}")
    time.sleep(0.3)
print(f"cluster: healthy after {time.monotonic() - start:.1f} s ({', '.join(urls)})")
PY
}

fail_up() {
    local f
    for f in "$CLUSTER_DIR"/replica-*.log "$CLUSTER_DIR/haproxy.log"; do
        [ -f "$f" ] || continue
        echo "---- $f (last lines)" >&2
        tail -n 15 "$f" >&2 || true
    done
    down
    exit 1
}

up() {
    case "$REPLICAS" in '' | *[!0-9]* | 0) echo "cluster: REPLICAS must be a positive integer, not '$REPLICAS'" >&2; exit 2 ;; esac
    local haproxy
    haproxy="$(haproxy_bin)"
    if [ -z "$haproxy" ]; then
        echo "cluster: haproxy is not installed: run 'bash scripts/install_haproxy.sh' (or 'make cluster')" >&2
        exit 1
    fi
    if [ ! -x "$PYTHON" ]; then
        echo "cluster: no Python at $PYTHON: run 'make setup' first" >&2
        exit 1
    fi
    mkdir -p "$CLUSTER_DIR"
    for pid in $(all_pids); do
        if kill -0 "$pid" 2>/dev/null; then
            echo "cluster: already running (PID $pid, $CLUSTER_DIR): 'make cluster-down' first" >&2
            exit 1
        fi
    done
    rm -f "$CLUSTER_DIR/replicas.pid" "$CLUSTER_DIR/haproxy.pid" "$CLUSTER_DIR/haproxy.sock"

    local ports=() i
    for ((i = 0; i < REPLICAS; i++)); do ports+=($((CLUSTER_REPLICA_PORT + i))); done
    # every port must be free before anything starts
    "$PYTHON" - "$CLUSTER_BIND" "$CLUSTER_PORT" "${ports[@]}" <<'PY'
import socket, sys
bind, *ports = sys.argv[1:]
for i, port in enumerate(ports):
    with socket.socket() as s:
        # as the servers do: a port with only closed (TIME_WAIT) connections is free
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((bind if i == 0 else "127.0.0.1", int(port)))
        except OSError as exc:
            sys.exit(f"cluster: port {port} is taken ({exc.strerror}): choose another CLUSTER_PORT")
PY

    local secret="${CLUSTER_COOKIE_SECRET:-}"
    if [ -z "$secret" ]; then
        if [ ! -s "$CLUSTER_DIR/cookie_secret" ]; then
            (umask 077 && "$PYTHON" -c 'import secrets; print(secrets.token_hex(32))' >"$CLUSTER_DIR/cookie_secret")
        fi
        secret="$(cat "$CLUSTER_DIR/cookie_secret")"
    fi

    # haproxy: sticky by an inserted cookie; a session whose replica is down is sent to another
    # (the cookie names a DOWN server, so haproxy balances it and sets a new cookie); WebSockets
    # need no option, only a long tunnel timeout.
    {
        cat <<EOF
# Written by scripts/cluster.sh; rewritten on every 'up'.
global
    maxconn 4096
    log stdout format raw local0
    # for the wait below and for bench/failover.py: 'show stat' lists each replica's state
    stats socket $CLUSTER_DIR/haproxy.sock mode 600 level user

defaults
    mode http
    log global
    option dontlognull
    # one line per request or WebSocket: time, replica, status, method, path, the request's affinity cookie
    log-format "%Ts.%ms %s %ST %HM %HP cookie=%CC"
    timeout connect 5s
    timeout client 60s
    timeout server 120s
    timeout http-request 60s
    # an open WebSocket (a student's tab) may be quiet for a long time
    timeout tunnel 1h
    timeout client-fin 5s
    # a request that the cookie's replica refused, or closed without an answer (it died), is
    # retried once more, on another replica
    retries 2
    option redispatch 1
    retry-on conn-failure empty-response

frontend diffusion_lens
    bind $CLUSTER_BIND:$CLUSTER_PORT
    capture cookie $AFFINITY_COOKIE= len 16
    default_backend replicas

backend replicas
    # a session is a long WebSocket: new sessions go to the replica with the fewest open connections
    balance leastconn
    cookie $AFFINITY_COOKIE insert indirect nocache httponly
    option httpchk GET /_stcore/health
    http-check expect status 200
    default-server check inter 1s fall 2 rise 2
    # which replica answered: for people debugging with curl -i, and for bench/failover.py
    http-response set-header X-Diffusion-Lens-Replica %[srv_name]
EOF
        for ((i = 0; i < REPLICAS; i++)); do
            echo "    server r$((i + 1)) 127.0.0.1:${ports[$i]} cookie r$((i + 1))"
        done
    } >"$CLUSTER_DIR/haproxy.cfg"
    "$haproxy" -c -q -f "$CLUSTER_DIR/haproxy.cfg"

    : >"$CLUSTER_DIR/ports"
    cd "$ROOT"
    for ((i = 0; i < REPLICAS; i++)); do
        # the secret goes through the environment, not the command line (which `ps` shows);
        # the replicas listen on 127.0.0.1, but students reach them where haproxy listens: the classroom
        # lock (app/session/sources.py) follows that address, so CLUSTER_BIND=0.0.0.0 locks the model picker
        STREAMLIT_SERVER_COOKIE_SECRET="$secret" \
            DIFFUSION_LENS_PUBLIC_ADDRESS="$CLUSTER_BIND" \
            DIFFUSION_LENS_THREADS="${DIFFUSION_LENS_THREADS:-1}" \
            nohup "$PYTHON" -m streamlit run app/streamlit_app.py \
            --server.address 127.0.0.1 --server.port "${ports[$i]}" \
            --server.headless true --browser.gatherUsageStats false \
            </dev/null >"$CLUSTER_DIR/replica-$((i + 1)).log" 2>&1 &
        echo "$!" >>"$CLUSTER_DIR/replicas.pid"
        echo "r$((i + 1)) ${ports[$i]}" >>"$CLUSTER_DIR/ports"
    done
    # wait until every replica answers /_stcore/health, then start the proxy (its servers start UP)
    local urls=() pids=()
    for port in "${ports[@]}"; do urls+=("http://127.0.0.1:$port/_stcore/health"); done
    mapfile -t pids <"$CLUSTER_DIR/replicas.pid"
    if ! wait_healthy "${#urls[@]}" "${urls[@]}" "${pids[@]}"; then fail_up; fi
    nohup "$haproxy" -db -f "$CLUSTER_DIR/haproxy.cfg" </dev/null >"$CLUSTER_DIR/haproxy.log" 2>&1 &
    echo "$!" >"$CLUSTER_DIR/haproxy.pid"
    # ... and until the proxy answers and its stats socket shows every replica UP
    local proxy_host="$CLUSTER_BIND"
    [ "$proxy_host" = 0.0.0.0 ] && proxy_host=127.0.0.1
    mapfile -t pids < <(all_pids)
    if ! wait_healthy 1 "http://$proxy_host:$CLUSTER_PORT/_stcore/health" "${pids[@]}"; then fail_up; fi
    echo "cluster: $REPLICAS replica(s) on 127.0.0.1:${ports[0]}-${ports[$((REPLICAS - 1))]} behind haproxy on http://$CLUSTER_BIND:$CLUSTER_PORT"
    echo "cluster: PIDs in $CLUSTER_DIR/replicas.pid (replicas) and $CLUSTER_DIR/haproxy.pid; stop with 'make cluster-down'"
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
*)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
