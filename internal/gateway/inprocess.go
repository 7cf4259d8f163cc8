package gateway

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// InProcess is the REST gateway's connection to the gRPC handlers: a
// grpc.ClientConnInterface whose unary calls run the registered handler in
// the calling goroutine, through the same interceptor chain and stats
// handler as the gRPC port. The gateway owns each request message and reads
// the reply only after the call, so the messages are copied once each way
// and nothing crosses a goroutine: a general in-process channel
// (grpchan/inprocgrpc) starts a goroutine and clones both messages per call,
// which cost the REST CheckToken a quarter of its throughput.
type InProcess struct {
	methods map[string]inProcessMethod
	unary   grpc.UnaryServerInterceptor
	// stats, when set, observes each call like the gRPC server's stats
	// handler (tracing).
	stats stats.Handler
	// maxHeaderBytes bounds a call's metadata as the gRPC port bounds its
	// header list, whatever the HTTP server let through: it counts request
	// lines, this counts fields, and many short headers the gateway
	// forwards (Authorization, traceparent) count more as fields.
	maxHeaderBytes int
}

type inProcessMethod struct {
	impl    any
	handler grpc.MethodHandler
}

var _ grpc.ClientConnInterface = (*InProcess)(nil)
var _ grpc.ServiceRegistrar = (*InProcess)(nil)

// NewInProcess returns a connection that runs calls through unary (which
// may be nil) and reports them to statsHandler (which may be nil), and
// refuses calls whose metadata exceeds maxHeaderBytes
// (DefaultMaxHeaderBytes when not positive).
func NewInProcess(unary grpc.UnaryServerInterceptor, statsHandler stats.Handler, maxHeaderBytes int) *InProcess {
	if maxHeaderBytes <= 0 {
		maxHeaderBytes = DefaultMaxHeaderBytes
	}
	return &InProcess{methods: map[string]inProcessMethod{}, unary: unary, stats: statsHandler, maxHeaderBytes: maxHeaderBytes}
}

// headerListTooLargeError refuses a call whose metadata exceeds the bound,
// before any interceptor (authentication included) reads it; REST answers
// it 431.
type headerListTooLargeError struct{ limit int }

func (e headerListTooLargeError) Error() string {
	return fmt.Sprintf("request headers exceed %d bytes", e.limit)
}

func (e headerListTooLargeError) GRPCStatus() *status.Status {
	return status.New(codes.ResourceExhausted, e.Error())
}

// headerListSize is the size of md as HTTP/2 counts a header list
// (RFC 9113 §6.5.2): each field's name and value and 32 bytes more.
func headerListSize(md metadata.MD) int {
	size := 0
	for name, values := range md {
		for _, value := range values {
			size += len(name) + len(value) + 32
		}
	}
	return size
}

// RegisterService makes the unary methods of desc callable. Chit's API has
// no streaming methods; a stream call answers UNIMPLEMENTED.
func (c *InProcess) RegisterService(desc *grpc.ServiceDesc, impl any) {
	for _, method := range desc.Methods {
		c.methods["/"+desc.ServiceName+"/"+method.MethodName] = inProcessMethod{impl: impl, handler: method.Handler}
	}
}

// Invoke runs one unary call.
func (c *InProcess) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) (err error) {
	m, ok := c.methods[method]
	if !ok {
		return status.Errorf(codes.Unimplemented, "method %s not implemented", method)
	}
	request, ok := args.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "request %T is not a protocol buffer", args)
	}
	answer, ok := reply.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "reply %T is not a protocol buffer", reply)
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	if headerListSize(md) > c.maxHeaderBytes {
		return headerListTooLargeError{limit: c.maxHeaderBytes}
	}
	ctx = metadata.NewIncomingContext(ctx, md)
	stream := &headerStream{method: method}
	ctx = grpc.NewContextWithServerTransportStream(ctx, stream)
	if c.stats != nil {
		ctx = c.stats.TagRPC(ctx, &stats.RPCTagInfo{FullMethodName: method})
		begin := time.Now()
		c.stats.HandleRPC(ctx, &stats.Begin{BeginTime: begin})
		defer func() { c.stats.HandleRPC(ctx, &stats.End{BeginTime: begin, EndTime: time.Now(), Error: err}) }()
	}
	decode := func(into any) error {
		proto.Merge(into.(proto.Message), request)
		return nil
	}
	resp, err := m.handler(m.impl, ctx, decode, c.unary)
	for _, opt := range opts {
		switch o := opt.(type) {
		case grpc.HeaderCallOption:
			*o.HeaderAddr = stream.header
		case grpc.TrailerCallOption:
			*o.TrailerAddr = stream.trailer
		}
	}
	if err != nil {
		return err
	}
	result, ok := resp.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "handler answered %T", resp)
	}
	proto.Reset(answer)
	proto.Merge(answer, result)
	return nil
}

// NewStream refuses: no Chit method streams, and the gateway maps none.
func (c *InProcess) NewStream(_ context.Context, _ *grpc.StreamDesc, method string, _ ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Errorf(codes.Unimplemented, "streaming method %s is not served in process", method)
}

// headerStream collects what a handler sets with grpc.SetHeader and
// grpc.SetTrailer, which the gateway turns into HTTP headers.
type headerStream struct {
	method          string
	header, trailer metadata.MD
}

func (s *headerStream) Method() string { return s.method }

func (s *headerStream) SetHeader(md metadata.MD) error {
	s.header = metadata.Join(s.header, md)
	return nil
}

func (s *headerStream) SendHeader(md metadata.MD) error { return s.SetHeader(md) }

func (s *headerStream) SetTrailer(md metadata.MD) error {
	s.trailer = metadata.Join(s.trailer, md)
	return nil
}
