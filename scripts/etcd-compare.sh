#!/usr/bin/env bash
# make bench-etcd: vsm's single-record write path against etcd on this
# machine, in the same run (issue 13).
#
# Starts a 3-node etcd (Debian's etcd-server, installed with apt-get if
# missing) on loopback with its data under a temporary directory, then runs
# e2e's BenchmarkWritePath with VSM_ETCD_ENDPOINTS naming it: each round
# measures a fresh 3-node vsm cluster, then etcd, with the same client shape
# (one HTTP request per acknowledged put, to the leader): 1000 sequential
# puts, and puts from 64 concurrent clients. It prints min/median/max per
# system and the vsm/etcd ratios of the medians. Everything it started is
# stopped on exit.
#
# Knobs: VSM_ETCD_PORT (first of 6 ports, default 23790),
# VSM_BENCH_ROUNDS (default 3), VSM_BENCH_CONC_PUTS (default 100000).
set -euo pipefail

cd "$(dirname "$0")/.."
if ! command -v etcd >/dev/null; then
	echo "etcd not found; installing Debian's etcd-server and etcd-client"
	apt-get install -y etcd-server etcd-client >/dev/null
fi
etcd --version | head -1

port=${VSM_ETCD_PORT:-23790}
data=$(mktemp -d /tmp/vsm-etcd-XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$data"
}
trap cleanup EXIT

cluster=""
endpoints=""
for i in 1 2 3; do
	client=$((port + 2 * (i - 1)))
	peer=$((client + 1))
	cluster+="${cluster:+,}e$i=http://127.0.0.1:$peer"
	endpoints+="${endpoints:+,}http://127.0.0.1:$client"
done
for i in 1 2 3; do
	client=$((port + 2 * (i - 1)))
	peer=$((client + 1))
	etcd --name "e$i" --data-dir "$data/e$i" \
		--listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
		--listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
		--initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token vsm-bench \
		--log-level error >"$data/e$i.log" 2>&1 &
	pids+=($!)
done
for _ in $(seq 100); do
	if ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint health >/dev/null 2>&1; then
		break
	fi
	sleep 0.2
done
ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint health

VSM_ETCD_ENDPOINTS=$endpoints go test -run XXX -bench '^BenchmarkWritePath$' -benchtime 1x -timeout 60m ./e2e
