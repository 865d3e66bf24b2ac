package gateway

import (
	"encoding/json"
	"testing"

	"github.com/filecoin-project/go-state-types/abi"
	prooftypes "github.com/filecoin-project/go-state-types/proof"
	"github.com/google/uuid"

	"github.com/vsm-project/vsm/fullnode"
)

// TestWireNames pins the JSON of the proof event types to venus-shared's
// (types/gateway), which sophon-gateway and damocles speak: a renamed
// field would silently break the protocol with a real gateway.
func TestWireNames(t *testing.T) {
	id := uuid.MustParse("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
	sealed := sealedCID(t, [32]byte{1})
	for _, tt := range []struct {
		name string
		v    any
		want string
	}{
		{"ProofRegisterPolicy", ProofRegisterPolicy{MinerAddress: fullnode.IDAddress(1000)}, `{"MinerAddress":"f01000"}`},
		{"RequestEvent", RequestEvent{ID: id, Method: MethodComputeProof, Payload: []byte("{}")},
			`{"Id":"6ba7b810-9dad-11d1-80b4-00c04fd430c8","Method":"ComputeProof","Payload":"e30="}`},
		{"ResponseEvent", ResponseEvent{ID: id, Error: "x"}, `{"Id":"6ba7b810-9dad-11d1-80b4-00c04fd430c8","Payload":null,"Error":"x"}`},
		{"ConnectedCompleted", ConnectedCompleted{ChannelId: id}, `{"ChannelId":"6ba7b810-9dad-11d1-80b4-00c04fd430c8"}`},
		{"ComputeProofRequest", ComputeProofRequest{
			SectorInfos: []prooftypes.ExtendedSectorInfo{{SealProof: 5, SectorNumber: 3, SealedCID: sealed}},
			Rand:        abi.PoStRandomness{1, 2}, Height: 10, NWVersion: 21,
		}, `{"SectorInfos":[{"SealProof":5,"SectorNumber":3,"SectorKey":null,"SealedCID":{"/":"` + sealed.String() + `"}}],"Rand":"AQI=","Height":10,"NWVersion":21}`},
		{"PoStProof answer", []prooftypes.PoStProof{{PoStProof: 0, ProofBytes: []byte{0xaa}}}, `[{"PoStProof":0,"ProofBytes":"qg=="}]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("got  %s\nwant %s", b, tt.want)
			}
		})
	}
}
