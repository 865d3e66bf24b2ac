// The filecoin-ffi engine: a separate module so that the main vsm module
// (and CI, and `go build ./...`) never needs filecoin-ffi's Rust/CUDA build.
// Build it with `make ffi` (see README). Run `go mod tidy` here once the
// extern/filecoin-ffi submodule is built; it fills in go.sum and the
// indirect requirements.
module github.com/vsm-project/vsm/prover/ffi

go 1.26.8

require (
	github.com/filecoin-project/filecoin-ffi v0.0.0
	github.com/filecoin-project/go-fil-commcid v0.2.0
	github.com/filecoin-project/go-state-types v0.16.0
	github.com/urfave/cli/v2 v2.27.7
	github.com/vsm-project/vsm v0.0.0
	go.uber.org/zap v1.28.0
)

replace github.com/vsm-project/vsm => ../..

replace github.com/filecoin-project/filecoin-ffi => ../../extern/filecoin-ffi
