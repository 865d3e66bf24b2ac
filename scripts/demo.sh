#!/usr/bin/env bash
# make demo: a local vsm node on the embedded defaults (raft on bolt, the
# built-in proof engine's sector format), with a miner and real sectors on
# disk whose locations are stored in the replicated index. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
VSM="$PWD/bin/vsm"
DEMO="$PWD/.demo"
HOME_DIR="$DEMO/node1"
SECTORS="$DEMO/store-1"
API=127.0.0.1:${VSM_DEMO_PORT:-1789}

rm -rf "$DEMO"
mkdir -p "$DEMO"
vsm() { "$VSM" --home "$HOME_DIR" "$@"; }

vsm daemon init --node-id node1 --listen "$API" --raft-addr 127.0.0.1:1790 --gossip-addr 127.0.0.1:1791 >/dev/null
vsm daemon run --bootstrap >"$DEMO/node1.log" 2>&1 &
DAEMON=$!
trap 'echo; echo "stopping"; kill $DAEMON 2>/dev/null; wait $DAEMON 2>/dev/null; exit 0' INT TERM
trap 'kill $DAEMON 2>/dev/null || true' EXIT

for _ in $(seq 100); do
  curl -sf "http://$API/healthz" >/dev/null 2>&1 && break
  kill -0 $DAEMON 2>/dev/null || { cat "$DEMO/node1.log"; exit 1; }
  sleep 0.1
done

echo "== creating 8 real 2KiB sectors for miner t01000 in $SECTORS"
vsm miner add t01000 --sector-size 2KiB
vsm storage add store-1 --path "$SECTORS"
"$VSM" util sector create --miner 1000 --number 0 --count 8 --dir "$SECTORS" --json |
  sed -E 's/.*"number":([0-9]+).*"seal_proof":([0-9]+),"comm_r":"([0-9a-f]+)".*/{"miner":1000,"number":\1,"sealed":"store-1","cache":"store-1","proof":\2,"commr":"\3"}/' \
  >"$DEMO/locations.jsonl"
vsm sector location import --file "$DEMO/locations.jsonl" --quiet

echo "== the replicated index"
vsm miner list
vsm storage list
vsm sector location list --miner t01000

cat <<MSG

vsm node1 is running (log: $DEMO/node1.log)
  API      http://$API/rpc/v0   (token in $HOME_DIR/token)
  metrics  http://$API/metrics
  try      ./bin/vsm --home $HOME_DIR sector location get --miner t01000 --number 3
Press Ctrl-C to stop.
MSG
wait $DAEMON
