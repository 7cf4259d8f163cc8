package grpcapi

import (
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	encodingproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/chit-auth/chit/internal/chiterr"
)

// LenientStrings is a server option whose codec accepts string fields that
// are not valid UTF-8, replacing each bad sequence with U+FFFD. gRPC turns
// any decoding failure into INTERNAL before an interceptor can see it; with
// the replacement the request reaches the handlers, whose checks refuse
// such a name as a bad argument (a password so mangled simply fails to
// match). A message that does not decode at all (truncated, a wrong wire
// type) reaches the interceptors empty and marked, and they answer
// INVALID_ARGUMENT (undecodable). Over REST the gateway already answers 400.
func LenientStrings() grpc.ServerOption {
	return grpc.ForceServerCodecV2(lenientCodec{encoding.GetCodecV2(encodingproto.Name)})
}

type lenientCodec struct{ encoding.CodecV2 }

func (c lenientCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	message, ok := v.(proto.Message)
	if err == nil || !ok {
		return err
	}
	if repaired, changed := repairStrings(data.Materialize(), message.ProtoReflect().Descriptor()); changed {
		proto.Reset(message)
		if err = proto.Unmarshal(repaired, message); err == nil {
			return nil
		}
	}
	markUndecodable(message, err)
	return nil
}

// undecodableField carries, in an empty message's unknown fields, why the
// request did not decode: the highest field number, which no Chit message
// uses. A message is the one place the codec and the interceptors share.
const undecodableField = protowire.MaxValidNumber

func markUndecodable(message proto.Message, err error) {
	proto.Reset(message)
	message.ProtoReflect().SetUnknown(protowire.AppendString(protowire.AppendTag(nil, undecodableField, protowire.BytesType), err.Error()))
}

// undecodable is the INVALID_ARGUMENT a request marked by the codec gets,
// or nil for one that decoded.
func undecodable(req any) error {
	message, ok := req.(proto.Message)
	if !ok {
		return nil
	}
	unknown := message.ProtoReflect().GetUnknown()
	if len(unknown) == 0 {
		return nil
	}
	num, typ, n := protowire.ConsumeTag(unknown)
	if n < 0 || num != undecodableField || typ != protowire.BytesType {
		return nil
	}
	cause, _ := protowire.ConsumeString(unknown[n:])
	return chiterr.New(chiterr.InvalidArgument, "the request is not a valid %s message: %s",
		message.ProtoReflect().Descriptor().FullName(), strings.TrimPrefix(cause, "proto: "))
}

// repairStrings rewrites the string fields of a wire-format message of type
// md (and of the messages in it) to valid UTF-8. It reports whether any
// changed; malformed wire data is left for the decoder to refuse.
func repairStrings(b []byte, md protoreflect.MessageDescriptor) ([]byte, bool) {
	var out []byte
	changed := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false
		}
		size := protowire.ConsumeFieldValue(num, typ, b[n:])
		if size < 0 {
			return nil, false
		}
		field := b[:n+size]
		if fd := md.Fields().ByNumber(num); fd != nil && typ == protowire.BytesType {
			value, _ := protowire.ConsumeBytes(b[n:])
			switch fd.Kind() {
			case protoreflect.StringKind:
				if fixed := strings.ToValidUTF8(string(value), "\uFFFD"); fixed != string(value) {
					field = protowire.AppendString(protowire.AppendTag(nil, num, typ), fixed)
					changed = true
				}
			case protoreflect.MessageKind:
				if fixed, inner := repairStrings(value, fd.Message()); inner {
					field = protowire.AppendBytes(protowire.AppendTag(nil, num, typ), fixed)
					changed = true
				}
			}
		}
		out = append(out, field...)
		b = b[n+size:]
	}
	return out, changed
}
