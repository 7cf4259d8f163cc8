package grpcapi

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
)

// Strings that are not UTF-8 are repaired in nested and repeated messages;
// everything else is kept as it was.
func TestRepairStrings(t *testing.T) {
	item := func(id string) []byte {
		return protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), id)
	}
	var wire []byte
	for _, id := range []string{"good", "ba\xffd", "also-good"} {
		wire = protowire.AppendBytes(protowire.AppendTag(wire, 1, protowire.BytesType), item(id))
	}
	request := &authv1.AuthProvidersRegisterRequest{}
	if proto.Unmarshal(wire, request) == nil {
		t.Fatal("the test's input decodes as it is: it tests nothing")
	}
	repaired, changed := repairStrings(wire, request.ProtoReflect().Descriptor())
	if !changed {
		t.Fatal("nothing was repaired")
	}
	if err := proto.Unmarshal(repaired, request); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, item := range request.GetItems() {
		ids = append(ids, item.GetId())
	}
	if len(ids) != 3 || ids[0] != "good" || ids[1] != "ba\uFFFDd" || ids[2] != "also-good" {
		t.Fatalf("repaired ids %q", ids)
	}
	if _, changed := repairStrings([]byte{0xff, 0xff}, request.ProtoReflect().Descriptor()); changed {
		t.Fatal("malformed wire data was 'repaired'")
	}
}
