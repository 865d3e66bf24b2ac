#!/usr/bin/env bash
# Times one WindowPoSt partition on an NVIDIA GPU against the CPU build, in
# the same run. Needs: an NVIDIA driver (nvidia-smi), the CUDA toolkit (nvcc)
# for FFI_GPU=cuda (the default) or an OpenCL ICD and headers for
# FFI_GPU=opencl, Rust and Go. It builds bin/vsm-ffi-prover (CPU) and
# bin/vsm-ffi-prover-$FFI_GPU, generates the small-sector parameters if
# missing, then runs BenchmarkPartition (2 KiB and 8 MiB partitions, first
# request and warm median, child RSS) once with each binary.
#
# The figures for 2 KiB and 8 MiB partitions mostly measure fixed costs;
# the mainnet anchor is a 32 GiB partition in 3.5-4.4 min on an RTX 3090,
# which needs the ceremony's 32 GiB parameters and a sealed 32 GiB sector
# (not built here).
set -euo pipefail
cd "$(dirname "$0")/.."
GPU=${FFI_GPU:-cuda}
command -v nvidia-smi >/dev/null || { echo "gpu-bench: nvidia-smi not found: this script needs an NVIDIA GPU and driver" >&2; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
if [ "$GPU" = cuda ] && ! command -v nvcc >/dev/null; then
  echo "gpu-bench: nvcc not found: install the CUDA toolkit, or run with FFI_GPU=opencl" >&2
  exit 1
fi
make --no-print-directory build ffi params
FFI_GPU=$GPU ./scripts/ffi.sh build
export FIL_PROOFS_PARAMETER_CACHE=${FIL_PROOFS_PARAMETER_CACHE:-$HOME/.cache/vsm/params}
for bin in vsm-ffi-prover "vsm-ffi-prover-$GPU"; do
  echo "== $bin"
  (cd prover/ffi && VSM_FFI_PROVER="$PWD/../../bin/$bin" VSM_BIN="$PWD/../../bin/vsm" CGO_ENABLED=1 \
    go test -tags nofvm -run XXX -bench 'BenchmarkPartition/ffi' -benchtime 3x -timeout 30m .) | grep -E '^Benchmark'
done
