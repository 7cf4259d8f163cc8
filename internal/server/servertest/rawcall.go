package servertest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// EncodeRawCall is the HPACK header block of a unary gRPC call to method
// (a full name, /package.Service/Method) carrying metadata, every field a
// never-indexed literal: the block means the same on any connection, so one
// encoding serves many sends.
func EncodeRawCall(method string, metadata []hpack.HeaderField) []byte {
	var block bytes.Buffer
	encoder := hpack.NewEncoder(&block)
	fields := append([]hpack.HeaderField{
		{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"}, {Name: ":path", Value: method},
		{Name: ":authority", Value: "chit.test"}, {Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"},
	}, metadata...)
	for _, field := range fields {
		field.Sensitive = true
		_ = encoder.WriteField(field)
	}
	return block.Bytes()
}

// RawAnswer is how the server ended a call sent with SendRawCall.
type RawAnswer struct {
	// GRPCStatus is the grpc-status the server answered the call with, ""
	// when it answered none.
	GRPCStatus string
	// Reset is set when the server reset the call's stream, with ResetCode.
	Reset     bool
	ResetCode http2.ErrCode
	// Closed is set when the server ended the connection before answering
	// (GoAway when it said so first, with GoAwayCode).
	Closed     bool
	GoAway     bool
	GoAwayCode http2.ErrCode
}

func (a RawAnswer) String() string {
	switch {
	case a.GRPCStatus != "":
		return "grpc-status " + a.GRPCStatus
	case a.Reset:
		return "RST_STREAM " + a.ResetCode.String()
	case a.GoAway:
		return "GOAWAY " + a.GoAwayCode.String()
	case a.Closed:
		return "connection closed"
	}
	return "no answer"
}

// SendRawCall sends the header block of a call (EncodeRawCall) on a new
// HTTP/2 connection to addr, then an empty request message, and reads
// until the server answers the call or ends the connection (or deadline
// passes). It is the client an attacker writes: grpc-go's own refuses to
// send more than the server's SETTINGS_MAX_HEADER_LIST_SIZE, so only this
// one shows what the server does with more.
func SendRawCall(addr string, block []byte, deadline time.Time) (RawAnswer, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return RawAnswer{}, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(deadline); err != nil {
		return RawAnswer{}, err
	}
	framer := http2.NewFramer(conn, conn)
	framer.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	const streamID = 1
	// The server may end the connection while this is still writing; what
	// it read before then is its answer, so write errors are not.
	go func() {
		if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
			return
		}
		if err := framer.WriteSettings(); err != nil {
			return
		}
		// 16 KiB is the frame size every HTTP/2 peer must accept (RFC 9113 §4.2).
		const frameSize = 16 << 10
		first := block[:min(len(block), frameSize)]
		if err := framer.WriteHeaders(http2.HeadersFrameParam{StreamID: streamID, BlockFragment: first, EndHeaders: len(first) == len(block)}); err != nil {
			return
		}
		for rest := block[len(first):]; len(rest) > 0; {
			fragment := rest[:min(len(rest), frameSize)]
			rest = rest[len(fragment):]
			if err := framer.WriteContinuation(streamID, len(rest) == 0, fragment); err != nil {
				return
			}
		}
		// An empty message: the five-byte gRPC prefix of zero length.
		_ = framer.WriteData(streamID, true, make([]byte, 5))
	}()
	var answer RawAnswer
	for {
		frame, err := framer.ReadFrame()
		if err != nil {
			var timeout net.Error
			if errors.As(err, &timeout) && timeout.Timeout() {
				return answer, fmt.Errorf("no answer before the deadline: %w", err)
			}
			answer.Closed = true
			return answer, nil
		}
		switch frame := frame.(type) {
		case *http2.MetaHeadersFrame:
			if frame.StreamID != streamID {
				continue
			}
			if value := frame.PseudoValue("status"); value != "" && value != strconv.Itoa(200) {
				return answer, fmt.Errorf("HTTP status %s", value)
			}
			for _, field := range frame.RegularFields() {
				if field.Name == "grpc-status" {
					answer.GRPCStatus = field.Value
				}
			}
			if frame.StreamEnded() {
				return answer, nil
			}
		case *http2.RSTStreamFrame:
			if frame.StreamID == streamID {
				answer.Reset, answer.ResetCode = true, frame.ErrCode
				return answer, nil
			}
		case *http2.GoAwayFrame:
			answer.GoAway, answer.GoAwayCode = true, frame.ErrCode
		}
	}
}
