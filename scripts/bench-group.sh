#!/bin/sh
# bench-group.sh runs one group of `make bench` so that a failing group does
# not stop the others: make would stop at the first failing command and the
# later groups' figures would never be printed.
#
#   bench-group.sh NAME -- CMD [ARG...]   run CMD; if it fails, record NAME
#   bench-group.sh --summary              list the failed groups; exit 1 if any
#   bench-group.sh --reset                forget earlier failures
#
# Failures go to the file $BENCH_FAILURES (one "NAME (exit N)" a line), which
# the Makefile points at a file under bin/. A group's own output passes
# through unchanged.
set -u

failures=${BENCH_FAILURES:?set BENCH_FAILURES to the file that collects failed benchmark groups}

usage() {
	echo "usage: $0 NAME -- CMD [ARG...] | --summary | --reset" >&2
	exit 2
}

case "${1:-}" in
--reset)
	mkdir -p "$(dirname "$failures")" && : >"$failures"
	exit $?
	;;
--summary)
	if [ -s "$failures" ]; then
		echo "== bench: $(wc -l <"$failures" | tr -d ' ') group(s) FAILED (their output is above):"
		sed 's/^/   - /' "$failures"
		exit 1
	fi
	echo "== bench: every group ran"
	exit 0
	;;
"" | --*) usage ;;
esac

name=$1
shift
[ "${1:-}" = "--" ] || usage
shift
[ $# -gt 0 ] || usage

echo "== bench group: $name"
"$@"
rc=$?
if [ $rc -ne 0 ]; then
	mkdir -p "$(dirname "$failures")"
	echo "$name (exit $rc)" >>"$failures"
	echo "== bench group FAILED: $name (exit $rc); going on with the other groups"
fi
exit 0
