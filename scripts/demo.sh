#!/usr/bin/env bash
# make demo: a devnet (simulated chain, fast epochs) and a 3-node vsm
# cluster on this machine. Each node runs two ext-prover children
# (`vsm wdpost`, the built-in engine: real sector reads, NOT valid on
# mainnet) and proves the deadlines the cluster's leader assigns to it, and
# a WinningPoSt child (`vsm winpost`) for the rounds the devnet's election
# picks: every node runs --miner, registered with the devnet's gateway
# stand-in, which asks one of them per round. The devnet judges every
# deadline and round; this script prints its totals and the raft leader
# every few seconds. Ctrl-C stops every process it started.
#
# Everything lives in ./.demo, wiped at each start. Knobs (environment):
#   VSM_DEMO_PORT   first of the 9 node ports (default 1789: node 1 uses
#                   1789 API, 1790 raft, 1791 gossip; node 2 1792-1794;
#                   node 3 1795-1797). The devnet takes a free port.
#   VSM_DEMO_EPOCH  wall time per epoch (default 200ms: a deadline window
#                   of 60 epochs is open 12 s)
#   VSM_DEMO_MINERS number of miners (default 4), 96 2 KiB sectors each
#   ENGINE          builtin (default) or ffi: real sectors sealed by
#                   filecoin-ffi, real SNARKs proven by bin/vsm-ffi-prover
#                   children and verified by the devnet with filecoin-ffi
#                   (make demo ENGINE=ffi builds it and the parameters)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEMO="$ROOT/.demo"
BASE=${VSM_DEMO_PORT:-1789}
EPOCH=${VSM_DEMO_EPOCH:-200ms}
MINERS=${VSM_DEMO_MINERS:-4}
SECTORS=96     # 2 KiB sectors, 2 per partition: one partition in each of the 48 deadlines
FIRST_DUE=50   # the devnet judges deadlines whose challenge epoch is at or after this
STAGGER=15     # miner i's proving period starts 15*i epochs after miner 0's
ENGINE=${ENGINE:-builtin}
case "$ENGINE" in
  builtin) ;;
  ffi)
    [ -x "$ROOT/bin/vsm-ffi-prover" ] || { echo "bin/vsm-ffi-prover is missing: run 'make demo ENGINE=ffi' (it runs make ffi and make params)" >&2; exit 1; }
    export FIL_PROOFS_PARAMETER_CACHE=${FIL_PROOFS_PARAMETER_CACHE:-$HOME/.cache/vsm/params}
    ;;
  *) echo "ENGINE=$ENGINE: want builtin or ffi" >&2; exit 1 ;;
esac

[ -x "$ROOT/bin/vsm" ] || { echo "bin/vsm is missing: run 'make demo' (or 'make build' first)" >&2; exit 1; }

# A demo still running from an earlier start (e.g. its terminal was closed):
# stop the processes it recorded, by pid, before wiping its directory.
if [ -f "$DEMO/pids" ]; then
  while read -r pid; do
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
    if [[ "$cmd" == *"$DEMO"* ]]; then
      echo "stopping pid $pid left by an earlier demo"
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done <"$DEMO/pids"
  sleep 2
fi

# Port n of node i (0-based): BASE + 3*i + n.
port() { echo $((BASE + 3 * $1 + $2)); }
in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for i in 0 1 2; do
  for n in 0 1 2; do
    p=$(port $i $n)
    if in_use "$p"; then
      echo "port $p is in use; stop what uses it or pick other ports: VSM_DEMO_PORT=2789 make demo" >&2
      exit 1
    fi
  done
done

rm -rf "$DEMO"
mkdir -p "$DEMO/bin"
# Every process of the demo runs this path, so `pgrep -f .demo` finds them
# all, the prover children included.
ln -s "$ROOT/bin/vsm" "$DEMO/bin/vsm"
VSM="$DEMO/bin/vsm"
FFI="$DEMO/bin/vsm-ffi-prover"
if [ "$ENGINE" = ffi ]; then ln -s "$ROOT/bin/vsm-ffi-prover" "$FFI"; fi
: >"$DEMO/pids"

PIDS=()       # daemons and the devnet, each the leader of its own process group
DEVNET_PID=""
STOPPING=""
stop_all() {
  [ -n "$STOPPING" ] && return
  STOPPING=1
  trap - INT TERM HUP
  echo
  echo "== stopping the 3 nodes and the devnet"
  local kids=() pid
  for pid in "${PIDS[@]}"; do
    # the prover children run in their own process groups: note them by pid
    mapfile -t -O "${#kids[@]}" kids < <(pgrep -P "$pid" 2>/dev/null || true)
  done
  for pid in "${PIDS[@]}"; do
    [ "$pid" = "$DEVNET_PID" ] || kill -TERM "$pid" 2>/dev/null || true
  done
  for _ in $(seq 100); do    # up to 10 s for a clean shutdown
    local alive=0
    for pid in "${PIDS[@]}"; do
      [ "$pid" = "$DEVNET_PID" ] || ! kill -0 "$pid" 2>/dev/null || alive=1
    done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  [ -n "$DEVNET_PID" ] && kill -TERM "$DEVNET_PID" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$DEVNET_PID" 2>/dev/null || break
    sleep 0.1
  done
  for pid in "${PIDS[@]}" "${kids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      echo "pid $pid did not stop in time: kill -9"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  wait 2>/dev/null || true
  local left
  left=$(pgrep -f "$DEMO/bin/vsm" || true)
  if [ -n "$left" ]; then
    echo "still running (pids $(echo $left)): stop them with kill" >&2
  else
    rm -f "$DEMO/pids"
    echo "all stopped (no process of $DEMO/bin/vsm left); logs stay in $DEMO until the next start"
  fi
}
on_signal() { stop_all; exit 0; }
trap on_signal INT TERM HUP
trap stop_all EXIT

# start NAME CMD...: run CMD in the background in a new session (Ctrl-C
# reaches only this script, which stops the processes in order), log to
# .demo/NAME.log.
start() {
  local name=$1
  shift
  setsid "$@" >"$DEMO/$name.log" 2>&1 </dev/null &
  PIDS+=($!)
  echo $! >>"$DEMO/pids"
}

http_ok() { # http_ok HOST:PORT PATH: the status line of GET PATH is 200
  (
    exec 3<>"/dev/tcp/${1%:*}/${1#*:}" || exit 1
    printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$2" "$1" >&3
    read -r -t 2 status <&3
    [[ "$status" == *" 200 "* ]]
  ) 2>/dev/null
}

# --- the chain --------------------------------------------------------------
echo "== devnet: $MINERS miners x $SECTORS sectors of 2 KiB, $EPOCH per epoch, engine $ENGINE"
DN="$DEMO/devnet"
mkdir -p "$DN/sectors"
{
  echo "Seed = \"vsm-demo\""
  echo "FirstDueEpoch = $FIRST_DUE"
  if [ "$ENGINE" = ffi ]; then echo "Engine = \"ffi\""; fi
  printf '[Mining]\nExpectedLeadersPerEpoch = 0.5\nFirstEpoch = %d\n' $FIRST_DUE
  for ((i = 0; i < MINERS; i++)); do
    printf '[[Miners]]\nID = %d\nSectorSize = "2KiB"\nSectors = %d\nProvingPeriodOffset = %d\n' \
      $((1000 + i)) $SECTORS $((STAGGER * i))
  done
} >"$DEMO/devnet.toml"
# Built-in engine: write the sector files here (the devnet "seals" a sector
# by reusing the files already on disk) so that their CommR is at hand for
# the import. With ffi the devnet seals them and the locations come from
# the chain once it runs.
: >"$DEMO/locations.jsonl"
if [ "$ENGINE" = builtin ]; then
  for ((i = 0; i < MINERS; i++)); do
    # --json prints import records as they are imported (storage "sectors").
    "$VSM" util sector create --miner $((1000 + i)) --number 0 --count $SECTORS --size 2KiB --dir "$DN/sectors" --storage sectors --json \
      >>"$DEMO/locations.jsonl"
  done
fi
start devnet "$VSM" --log-level warn devnet run --dir "$DN" --spec "$DEMO/devnet.toml" --listen 127.0.0.1:0 --epoch "$EPOCH" --ffi-prover "$FFI"
DEVNET_PID=$!
for _ in $(seq 1200); do  # up to 2 min: real sealing of every sector with ffi
  [ -s "$DN/api-info" ] && break
  kill -0 "$DEVNET_PID" 2>/dev/null || { cat "$DEMO/devnet.log"; exit 1; }
  sleep 0.1
done
CHAIN=$(cat "$DN/api-info")
GATEWAY=$(cat "$DN/gateway-info")
echo "   FULLNODE_API_INFO=$CHAIN"
echo "   gateway stand-in for --miner: $GATEWAY"
if [ "$ENGINE" = ffi ]; then
  "$VSM" devnet locations --dir "$DN" --storage sectors >"$DEMO/locations.jsonl"
fi

# --- the cluster ------------------------------------------------------------
# Two children per node, as for two GPUs (see docs/ext-prover.md).
extprover() {
  if [ "$ENGINE" = ffi ]; then
    echo "# two children, as for two GPUs; filecoin-ffi on the CPU with local parameters"
    echo "# (no [[WinPost]] block: WinningPoSt shares them, to spare a third ffi process)"
    for _ in 1 2; do
      cat <<CFG
[[WdPost]]
Bin = "$FFI"
Args = ["wdpost"]
Concurrent = 1
ReadyTimeoutSecs = 60
[WdPost.Envs]
FIL_PROOFS_PARAMETER_CACHE = "$FIL_PROOFS_PARAMETER_CACHE"

CFG
    done
    return
  fi
  cat <<CFG
# two children, as for two GPUs; the built-in engine (not valid on mainnet)
[[WdPost]]
Bin = "$VSM"
Args = ["wdpost"]
Concurrent = 2
ReadyTimeoutSecs = 20

[[WdPost]]
Bin = "$VSM"
Args = ["wdpost"]
Concurrent = 2
ReadyTimeoutSecs = 20

# WinningPoSt for the devnet's gateway (--miner), apart from WindowPoSt
[[WinPost]]
Bin = "$VSM"
Args = ["winpost"]
ReadyTimeoutSecs = 20
CFG
}
API=() GOSSIP=()
for i in 0 1 2; do
  API+=("127.0.0.1:$(port $i 0)")
  GOSSIP+=("127.0.0.1:$(port $i 2)")
done
JOIN=$(IFS=,; echo "${GOSSIP[*]}")
echo "== 3 nodes: bootstrap-expect 3, each with ext-prover children, --poster --miner"
for i in 0 1 2; do
  id=n$((i + 1))
  secrets=()
  [ $i -gt 0 ] && secrets=(--secrets "$DEMO/secrets.json")
  "$VSM" --home "$DEMO/$id" daemon init --node-id $id --listen "${API[$i]}" \
    --raft-addr "127.0.0.1:$(port $i 1)" --gossip-addr "${GOSSIP[$i]}" "${secrets[@]}" >/dev/null
  [ $i -eq 0 ] && "$VSM" --home "$DEMO/n1" cluster secrets export "$DEMO/secrets.json" >/dev/null
  extprover >"$DEMO/$id/ext-prover.cfg"
  start $id "$VSM" --home "$DEMO/$id" daemon run --bootstrap-expect 3 --join "$JOIN" \
    --ext-prover --poster --chain-api "$CHAIN" --miner --gateway-api "$GATEWAY"
  echo "   $id  api ${API[$i]}  raft 127.0.0.1:$(port $i 1)  gossip ${GOSSIP[$i]}  log .demo/$id.log"
done
n1() { "$VSM" --home "$DEMO/n1" "$@"; }
leader() { n1 cluster status --json 2>/dev/null | sed -nE 's/.*"leader_id": "([^"]*)".*/\1/p' || true; }
for _ in $(seq 600); do
  [ -n "$(leader)" ] && break
  for pid in "${PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "a process exited during start-up; logs:"; tail -n 20 "$DEMO"/*.log; exit 1; }
  done
  sleep 0.1
done
echo "   leader: $(leader)"

echo "== miners, storage and $((MINERS * SECTORS)) sector locations into the replicated store (through n1)"
n1 storage add sectors --path "$DN/sectors" >/dev/null
for ((i = 0; i < MINERS; i++)); do
  n1 miner add "t0$((1000 + i))" --sector-size 2KiB >/dev/null
done
n1 sector location import --file "$DEMO/locations.jsonl" --quiet
height() { "$VSM" devnet report --dir "$DN" | sed -nE 's/^height ([0-9]+)$/\1/p'; }
h=$(height)
echo "   ready at epoch $h; the first judged deadlines are challenged at epoch $FIRST_DUE and close about $((FIRST_DUE + 80))"
if [ "${h:-0}" -ge $((FIRST_DUE - 10)) ]; then
  echo "   (start-up was slow on this machine: the first judged deadlines may be missed)"
fi

if http_ok "${API[0]}" /; then
  PAGE="status page   http://${API[0]}/"
else
  PAGE="status page   not served by this build yet; see the metrics and the schedule below"
fi
cat <<MSG

vsm is running: 3 nodes with prover children, $MINERS miners on a devnet at $EPOCH per epoch.
  $PAGE
  metrics       http://${API[0]}/metrics   (also :$(port 1 0) and :$(port 2 0))
  schedule      ./bin/vsm --home .demo/n1 cluster schedule
  members       ./bin/vsm --home .demo/n1 cluster members
  chain         ./bin/vsm devnet report --dir .demo/devnet --records 10
  logs          .demo/n1.log .demo/n2.log .demo/n3.log .demo/devnet.log
A deadline window is open 60 epochs; every miner has a partition in each of its 48
deadlines, and the devnet verifies each proof and counts the windows as they close.
From epoch $FIRST_DUE the devnet also elects miners (about one election every two epochs) and
asks a node for each round's WinningPoSt through its gateway stand-in.
Press Ctrl-C to stop.

MSG

while true; do
  rep=$("$VSM" devnet report --dir "$DN" --records 1 2>/dev/null || true)
  h=$(sed -nE 's/^height ([0-9]+)$/\1/p' <<<"$rep")
  tot=$(tail -n 1 <<<"$rep")
  win=$(sed -nE 's/^winning posts elected ([0-9]+) \(asked [0-9]+\): proven ([0-9]+), invalid ([0-9]+), missed ([0-9]+)$/winning \2\/\1 proven/p' <<<"$rep")
  last=$(awk 'NR==2 && $1 ~ /^t0/ {print "last closed " $1 " deadline " $3 " " $6}' <<<"$rep")
  ldr=$(leader || true)
  printf '%s  epoch %-5s  %s  %s  leader %s  %s\n' "$(date +%H:%M:%S)" "${h:-?}" "${tot:-devnet not answering}" "${win:-}" "${ldr:-?}" "$last"
  sleep 3
done
