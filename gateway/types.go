// Package gateway is vsm's side of sophon-gateway's proof event API, the
// way sophon-miner gets its WinningPoSt computed by the sector manager
// (`vsm daemon run --miner`): the node connects to each configured gateway
// over websocket JSON-RPC (go-jsonrpc, as venus), registers for each
// enabled miner with Gateway.ListenProofEvent, and answers every
// ComputeProof event it receives with Gateway.ResponseProofEvent, proving
// on the node's ext-prover children over the sector files the local
// replica locates.
//
// The wire types below mirror venus-shared/types/gateway field for field
// (JSON names included); they are redeclared so that vsm does not pull in
// venus.
package gateway

import (
	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/network"
	prooftypes "github.com/filecoin-project/go-state-types/proof"
	"github.com/google/uuid"
)

// Names on the wire, as venus-shared/api/gateway/v2 declares them.
const (
	// MethodNamespace prefixes every method: Gateway.ListenProofEvent.
	MethodNamespace = "Gateway"
	// NamespaceHeader tells sophon-gateway which API a connection speaks.
	NamespaceHeader = "X-VENUS-API-NAMESPACE"
	// APINamespace is NamespaceHeader's value for the v2 gateway API.
	APINamespace = "gateway.IGateway"
	// RPCPath is where the v2 API is served.
	RPCPath = "/rpc/v2"

	// MethodInitConnect is the first event of every ListenProofEvent
	// channel; it carries ConnectedCompleted and wants no answer.
	MethodInitConnect = "InitConnect"
	// MethodComputeProof asks for a WinningPoSt; its payload is a
	// ComputeProofRequest and its answer a JSON []PoStProof.
	MethodComputeProof = "ComputeProof"
)

// ProofRegisterPolicy is ListenProofEvent's parameter.
type ProofRegisterPolicy struct {
	MinerAddress address.Address
}

// RequestEvent is one event of a ListenProofEvent channel.
type RequestEvent struct {
	ID      uuid.UUID `json:"Id"`
	Method  string
	Payload []byte
}

// ResponseEvent answers a RequestEvent: Payload on success, Error (non
// empty) on failure.
type ResponseEvent struct {
	ID      uuid.UUID `json:"Id"`
	Payload []byte
	Error   string
}

// ConnectedCompleted is InitConnect's payload: the id the gateway gave
// this channel.
type ConnectedCompleted struct {
	ChannelId uuid.UUID //nolint:revive // wire name
}

// ComputeProofRequest is ComputeProof's payload: the sectors the chain
// challenged (the election already picked them) and the round's
// randomness, which callers may send unmasked.
type ComputeProofRequest struct {
	SectorInfos []prooftypes.ExtendedSectorInfo
	Rand        abi.PoStRandomness
	Height      abi.ChainEpoch
	NWVersion   network.Version
}
