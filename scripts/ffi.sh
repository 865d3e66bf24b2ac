#!/usr/bin/env bash
# make ffi / make params: build vsm's real proof engine from source.
#
#   scripts/ffi.sh build    bin/vsm-ffi-prover (the ext-prover child on
#                           filecoin-ffi) and bin/vsm-params
#   scripts/ffi.sh params   Groth16 parameters for 2 KiB and 8 MiB sectors
#                           in $FIL_PROOFS_PARAMETER_CACHE (local setup)
#
# filecoin-ffi comes from the Go module cache at the version prover/ffi/go.mod
# requires; its Rust crate (filcrypto) is built with cargo for the CPU
# (no CUDA/OpenCL, no FVM, no multicore SDR), in a folder under ~/.cache that
# outlives a fresh clone, so a second build takes seconds. The Go side is
# copied into build/filecoin-ffi (ignored by git) beside the built library,
# and prover/ffi's go.mod points there.
#
# Knobs: VSM_CACHE (default ~/.cache/vsm), FIL_PROOFS_PARAMETER_CACHE (default
# $VSM_CACHE/params), FFI_GPU=cuda|opencl for a GPU build (make ffi-gpu; it
# writes bin/vsm-ffi-prover-cuda or -opencl beside the CPU build).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

say() { printf '== ffi: %s\n' "$*"; }
die() { printf 'ffi: %s\n' "$*" >&2; exit 1; }

CACHE=${VSM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vsm}
FFI_MOD=github.com/filecoin-project/filecoin-ffi
FFI_VERSION=$(awk -v m="$FFI_MOD" '$1 == m && $2 ~ /^v/ { print $2; exit }' prover/ffi/go.mod)
[ -n "$FFI_VERSION" ] || die "prover/ffi/go.mod names no version of $FFI_MOD"
GPU=${FFI_GPU:-}
case "$GPU" in
  "") FEATURES="c-headers" ;;
  cuda) FEATURES="c-headers,cuda-no-fvm" ;;
  opencl) FEATURES="c-headers,opencl-no-fvm" ;;
  *) die "FFI_GPU must be empty (CPU), cuda or opencl, not '$GPU'" ;;
esac
SRC="$CACHE/filecoin-ffi-$FFI_VERSION-rust"        # filcrypto's sources, stable path
TARGET="$CACHE/cargo-target${GPU:+-$GPU}"           # cargo's output, reused across clones
OUT="$ROOT/build/filecoin-ffi"                      # the Go module prover/ffi builds against
# rustflags are part of every artifact's fingerprint: keep them constant.
export RUSTFLAGS="--print native-static-libs"
export CARGO_TARGET_DIR="$TARGET"

# filecoin-ffi's rust-toolchain.toml names a release that cannot be fetched
# here; fetch_module drops it from the copied sources, so cargo builds with
# the installed default toolchain (or $RUSTUP_TOOLCHAIN when set).
toolchain() {
  command -v cargo >/dev/null || die "cargo is not installed: install Rust (rustup) first"
  say "rust: $(cargo --version)${RUSTUP_TOOLCHAIN:+ (RUSTUP_TOOLCHAIN=$RUSTUP_TOOLCHAIN)}"
}

fetch_module() {
  say "filecoin-ffi $FFI_VERSION from the Go module cache"
  MODDIR=$(cd prover/ffi && go mod download -json "$FFI_MOD@$FFI_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$MODDIR" ] || die "go mod download $FFI_MOD@$FFI_VERSION gave no directory"
  if [ ! -f "$SRC/Cargo.lock" ]; then
    rm -rf "$SRC.tmp" && mkdir -p "$CACHE"
    cp -r "$MODDIR/rust" "$SRC.tmp" && chmod -R u+w "$SRC.tmp"
    rm -f "$SRC.tmp/rust-toolchain.toml"
    mv "$SRC.tmp" "$SRC"
  fi
}

build_filcrypto() {
  local log="$CACHE/filcrypto-build${GPU:+-$GPU}.log" libs="$TARGET/native-static-libs"
  say "cargo build of filcrypto (features $FEATURES) in $TARGET; the first build takes several minutes, log: $log"
  local start=$SECONDS
  (cd "$SRC" && cargo build --release --locked --no-default-features --features "$FEATURES") 2>&1 | tee "$log" |
    grep -E '^(error|warning: unused)|Finished|Compiling filcrypto' || true
  grep -q 'Finished' "$log" || die "cargo build of filcrypto failed; see $log"
  # cargo prints the static link flags only when it links the library.
  if grep -q 'native-static-libs:' "$log"; then
    grep -m1 'native-static-libs:' "$log" | sed 's/.*native-static-libs: //' >"$libs"
  fi
  [ -s "$libs" ] || die "no native-static-libs recorded in $libs: remove $TARGET and build again"
  local hdr="$TARGET/filcrypto-header"
  if [ ! -s "$hdr/filcrypto.h" ] || [ "$hdr/filcrypto.h" -ot "$TARGET/release/libfilcrypto.a" ]; then
    say "generating filcrypto.h"
    mkdir -p "$hdr"
    (cd "$SRC" && HEADER_DIR="$hdr" cargo test --release --locked --no-default-features --features "$FEATURES" build_headers) >>"$log" 2>&1 ||
      die "generating filcrypto.h failed; see $log"
  fi
  say "filcrypto ready in $((SECONDS - start)) s"
}

install_go_side() {
  rm -rf "$OUT" && mkdir -p "$OUT"
  cp -r "$MODDIR/." "$OUT/" && chmod -R u+w "$OUT"
  rm -rf "$OUT/rust/target"
  cp "$TARGET/release/libfilcrypto.a" "$TARGET/filcrypto-header/filcrypto.h" "$OUT/"
  sed -e "s;@VERSION@;$FFI_VERSION;" -e "s;@PRIVATE_LIBS@;$(cat "$TARGET/native-static-libs");" \
    "$OUT/rust/filcrypto.pc.template" >"$OUT/filcrypto.pc"
}

build_go() {
  say "go build bin/vsm-ffi-prover${GPU:+-$GPU} (cgo, tag nofvm)"
  mkdir -p bin
  (cd prover/ffi && CGO_ENABLED=1 go build -tags nofvm -ldflags "-X main.version=${VERSION:-dev}" -o "$ROOT/bin/vsm-ffi-prover${GPU:+-$GPU}" .)
  say "cargo build of vsm-params"
  (cd prover/ffi/params && cargo build --release --locked) 2>&1 | grep -E '^error|Finished' || true
  [ -x "$TARGET/release/vsm-params" ] || die "cargo build of vsm-params failed"
  cp "$TARGET/release/vsm-params" bin/vsm-params
}

params() {
  local dir=${FIL_PROOFS_PARAMETER_CACHE:-$CACHE/params}
  case "$(realpath -m "$dir")" in
    /var/tmp/filecoin-proof-parameters)
      die "$dir holds (or will hold) the ceremony's mainnet parameters; generate local ones elsewhere (e.g. FIL_PROOFS_PARAMETER_CACHE=$CACHE/params)" ;;
  esac
  [ -x bin/vsm-params ] || die "bin/vsm-params is missing: run 'make ffi' first"
  if [ -f "$dir/.vsm-params-complete" ]; then
    say "parameters already in $dir"
    return
  fi
  say "generating Groth16 parameters for 2 KiB and 8 MiB sectors in $dir (about 2 minutes on 2 cores)"
  FIL_PROOFS_PARAMETER_CACHE="$dir" bin/vsm-params
  cat >"$dir/LOCAL-SETUP.txt" <<EOF
These Groth16 parameters were generated by vsm-params from a local random
setup, not by Filecoin's trusted-setup ceremony. Proofs made with them verify
against the verifying keys in this folder and on no real chain. Never copy
them into /var/tmp/filecoin-proof-parameters.
EOF
  touch "$dir/.vsm-params-complete"
}

case "${1:-}" in
  build)
    start=$SECONDS
    toolchain
    fetch_module
    build_filcrypto
    install_go_side
    build_go
    say "done in $((SECONDS - start)) s: bin/vsm-ffi-prover${GPU:+-$GPU}, bin/vsm-params"
    ;;
  params) params ;;
  *) die "usage: scripts/ffi.sh build|params" ;;
esac
