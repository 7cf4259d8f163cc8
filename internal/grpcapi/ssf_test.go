package grpcapi_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	"github.com/chit-auth/chit/internal/server/servertest"
)

// receiverSecret is the Authorization value the push receiver of these
// tests asks for; it must reach the receiver and nothing else.
const receiverSecret = "Bearer receiver-secret-7c1d"

// pushReceiver is an RFC 8935 receiver that takes every SET and records
// the requests.
type pushReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	requests []receivedPush
}

type receivedPush struct {
	authorization, contentType, body string
}

func newPushReceiver(t *testing.T) *pushReceiver {
	t.Helper()
	r := &pushReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.requests = append(r.requests, receivedPush{req.Header.Get("Authorization"), req.Header.Get("Content-Type"), string(body)})
		r.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *pushReceiver) received() []receivedPush {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]receivedPush(nil), r.requests...)
}

// An admin registers a push and a poll receiver, reads, lists (in pages),
// pauses, enables, verifies and deletes them, on both transports and
// stores; the push stream's Authorization value reaches its receiver and
// is in no answer and no log line.
func TestAdminSecurityEventStreams(t *testing.T) {
	t.Parallel()
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		c := servertest.NewAdminCallers(t, e, tr)
		receiver := newPushReceiver(t)
		invoke := func(what, method string, req, resp proto.Message, want codes.Code) {
			t.Helper()
			servertest.WantCode(t, what, tr.Invoke(t, method, c.Admin, req, resp), want)
		}

		pushed := &adminv1.CreateSecurityEventStreamResponse{}
		invoke("create the push stream", adminv1.AdminService_CreateSecurityEventStream_FullMethodName, &adminv1.CreateSecurityEventStreamRequest{
			Id: "siem", Description: "the SIEM", Delivery: "push", EndpointUrl: receiver.URL + "/ssf", Authorization: receiverSecret,
			Audience: "https://siem.example", EventTypes: []string{"https://schemas.openid.net/secevent/caep/event-type/session-revoked"},
		}, pushed, codes.OK)
		if s := pushed.GetStream(); s.GetId() != "siem" || s.GetDelivery() != "push" || s.GetEndpointUrl() != receiver.URL+"/ssf" ||
			!s.GetHasAuthorization() || s.GetStatus() != "enabled" || s.GetAudience() != "https://siem.example" || s.GetDescription() != "the SIEM" ||
			len(s.GetEventTypes()) != 1 || s.GetPosition() == "" || s.GetCreateTime() == nil || s.GetReceiver() != "" {
			t.Fatalf("CreateSecurityEventStream answered %v", s)
		}
		polled := &adminv1.CreateSecurityEventStreamResponse{}
		invoke("create the poll stream", adminv1.AdminService_CreateSecurityEventStream_FullMethodName, &adminv1.CreateSecurityEventStreamRequest{
			Id: "gateway", Delivery: "poll", Receiver: servertest.ServiceName, Audience: "https://gateway.example",
		}, polled, codes.OK)
		if s := polled.GetStream(); s.GetDelivery() != "poll" || s.GetReceiver() != servertest.ServiceName || s.GetHasAuthorization() ||
			s.GetEndpointUrl() != "" || len(s.GetEventTypes()) != 0 || s.GetDeliveryTime() != nil {
			t.Fatalf("CreateSecurityEventStream (poll) answered %v", s)
		}
		invoke("create siem again", adminv1.AdminService_CreateSecurityEventStream_FullMethodName, &adminv1.CreateSecurityEventStreamRequest{
			Id: "siem", Delivery: "poll", Receiver: servertest.ServiceName, Audience: "a"}, &adminv1.CreateSecurityEventStreamResponse{}, codes.AlreadyExists)

		got := &adminv1.GetSecurityEventStreamResponse{}
		invoke("get siem", adminv1.AdminService_GetSecurityEventStream_FullMethodName, &adminv1.GetSecurityEventStreamRequest{Id: "siem"}, got, codes.OK)
		if s := got.GetStream(); s.GetId() != "siem" || !s.GetHasAuthorization() || s.GetPosition() != pushed.GetStream().GetPosition() ||
			s.GetEndpointUrl() != pushed.GetStream().GetEndpointUrl() || s.GetStatus() != "enabled" || s.GetCreateTime() == nil {
			t.Fatalf("GetSecurityEventStream answered %v, created %v", got.GetStream(), pushed.GetStream())
		}

		// By id, one a page.
		first := &adminv1.ListSecurityEventStreamsResponse{}
		invoke("list page 1", adminv1.AdminService_ListSecurityEventStreams_FullMethodName, &adminv1.ListSecurityEventStreamsRequest{PageSize: 1}, first, codes.OK)
		if len(first.GetStreams()) != 1 || first.GetStreams()[0].GetId() != "gateway" || first.GetNextPageToken() == "" {
			t.Fatalf("the first page is %v", first)
		}
		second := &adminv1.ListSecurityEventStreamsResponse{}
		invoke("list page 2", adminv1.AdminService_ListSecurityEventStreams_FullMethodName,
			&adminv1.ListSecurityEventStreamsRequest{PageSize: 1, PageToken: first.GetNextPageToken()}, second, codes.OK)
		if len(second.GetStreams()) != 1 || second.GetStreams()[0].GetId() != "siem" || !second.GetStreams()[0].GetHasAuthorization() {
			t.Fatalf("the second page is %v", second)
		}
		if next := second.GetNextPageToken(); next != "" {
			last := &adminv1.ListSecurityEventStreamsResponse{}
			invoke("list page 3", adminv1.AdminService_ListSecurityEventStreams_FullMethodName,
				&adminv1.ListSecurityEventStreamsRequest{PageSize: 1, PageToken: next}, last, codes.OK)
			if len(last.GetStreams()) != 0 || last.GetNextPageToken() != "" {
				t.Fatalf("the page after the last is %v", last)
			}
		}

		// Paused, a stream keeps its position and is not verified; enabled
		// again, it is.
		paused := &adminv1.SetSecurityEventStreamStatusResponse{}
		invoke("pause siem", adminv1.AdminService_SetSecurityEventStreamStatus_FullMethodName,
			&adminv1.SetSecurityEventStreamStatusRequest{Id: "siem", Status: "paused"}, paused, codes.OK)
		if s := paused.GetStream(); s.GetStatus() != "paused" || s.GetPosition() != pushed.GetStream().GetPosition() || s.GetUpdateTime() == nil {
			t.Fatalf("SetSecurityEventStreamStatus answered %v", s)
		}
		invoke("verify paused siem", adminv1.AdminService_VerifySecurityEventStream_FullMethodName,
			&adminv1.VerifySecurityEventStreamRequest{Id: "siem", State: "while paused"}, &adminv1.VerifySecurityEventStreamResponse{}, codes.FailedPrecondition)
		if n := len(receiver.received()); n != 0 {
			t.Fatalf("a paused stream pushed %d requests", n)
		}
		enabled := &adminv1.SetSecurityEventStreamStatusResponse{}
		invoke("enable siem", adminv1.AdminService_SetSecurityEventStreamStatus_FullMethodName,
			&adminv1.SetSecurityEventStreamStatusRequest{Id: "siem", Status: "enabled"}, enabled, codes.OK)
		if enabled.GetStream().GetStatus() != "enabled" {
			t.Fatalf("SetSecurityEventStreamStatus answered %v", enabled.GetStream())
		}
		invoke("verify siem", adminv1.AdminService_VerifySecurityEventStream_FullMethodName,
			&adminv1.VerifySecurityEventStreamRequest{Id: "siem", State: "check-1"}, &adminv1.VerifySecurityEventStreamResponse{}, codes.OK)
		pushes := receiver.received()
		if len(pushes) == 0 {
			t.Fatal("the verification event was not pushed")
		}
		for _, push := range pushes {
			if push.authorization != receiverSecret || push.contentType != "application/secevent+jwt" || strings.Count(push.body, ".") != 2 {
				t.Fatalf("the receiver got %+v", push)
			}
		}
		afterVerify := &adminv1.GetSecurityEventStreamResponse{}
		invoke("get verified siem", adminv1.AdminService_GetSecurityEventStream_FullMethodName, &adminv1.GetSecurityEventStreamRequest{Id: "siem"}, afterVerify, codes.OK)
		if s := afterVerify.GetStream(); s.GetDeliveryTime() == nil || s.GetLastError() != "" || s.GetPosition() != pushed.GetStream().GetPosition() {
			t.Fatalf("after a verification taken, the stream is %v", s)
		}
		invoke("verify gateway", adminv1.AdminService_VerifySecurityEventStream_FullMethodName,
			&adminv1.VerifySecurityEventStreamRequest{Id: "gateway"}, &adminv1.VerifySecurityEventStreamResponse{}, codes.OK)

		// The JSON answers have no field for the value, and hold it nowhere.
		code, body := servertest.RawAdmin(t, e, http.MethodGet, "/v1/admin/ssf-streams/siem", c.Admin, "", nil)
		if code != http.StatusOK || !strings.Contains(body, `"hasAuthorization":true`) && !strings.Contains(body, `"hasAuthorization": true`) {
			t.Fatalf("GET /v1/admin/ssf-streams/siem: %d %s", code, body)
		}
		for _, path := range []string{"/v1/admin/ssf-streams/siem", "/v1/admin/ssf-streams"} {
			if _, body := servertest.RawAdmin(t, e, http.MethodGet, path, c.Admin, "", nil); strings.Contains(body, "receiver-secret") {
				t.Fatalf("GET %s answered the Authorization value: %s", path, body)
			}
		}

		invoke("delete siem", adminv1.AdminService_DeleteSecurityEventStream_FullMethodName, &adminv1.DeleteSecurityEventStreamRequest{Id: "siem"},
			&adminv1.DeleteSecurityEventStreamResponse{}, codes.OK)
		invoke("get deleted siem", adminv1.AdminService_GetSecurityEventStream_FullMethodName, &adminv1.GetSecurityEventStreamRequest{Id: "siem"},
			&adminv1.GetSecurityEventStreamResponse{}, codes.NotFound)
		invoke("delete siem again", adminv1.AdminService_DeleteSecurityEventStream_FullMethodName, &adminv1.DeleteSecurityEventStreamRequest{Id: "siem"},
			&adminv1.DeleteSecurityEventStreamResponse{}, codes.NotFound)
		invoke("pause deleted siem", adminv1.AdminService_SetSecurityEventStreamStatus_FullMethodName,
			&adminv1.SetSecurityEventStreamStatusRequest{Id: "siem", Status: "paused"}, &adminv1.SetSecurityEventStreamStatusResponse{}, codes.NotFound)
		invoke("verify deleted siem", adminv1.AdminService_VerifySecurityEventStream_FullMethodName,
			&adminv1.VerifySecurityEventStreamRequest{Id: "siem"}, &adminv1.VerifySecurityEventStreamResponse{}, codes.NotFound)

		if strings.Contains(e.Logs.String(), "receiver-secret") {
			t.Fatal("the Authorization value reached the logs")
		}
		audited := map[string]bool{}
		for _, line := range servertest.AuditLines(e) {
			if line["action"] == "CreateSecurityEventStream" && line["outcome"] == "OK" {
				audited[line["target"].(string)] = true
			}
		}
		if !audited["siem"] || !audited["gateway"] {
			t.Fatalf("the creations' audit lines name %v, want siem and gateway", audited)
		}
	})
}

// Bad input gets INVALID_ARGUMENT naming the field (NOT_FOUND for what does
// not exist), never echoes an Authorization value, and stores nothing.
func TestAdminSecurityEventStreamBadInput(t *testing.T) {
	t.Parallel()
	servertest.ForEachTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		c := servertest.NewAdminCallers(t, e, tr)
		servertest.WantCode(t, "create gateway", tr.Invoke(t, adminv1.AdminService_CreateSecurityEventStream_FullMethodName, c.Admin,
			&adminv1.CreateSecurityEventStreamRequest{Id: "gateway", Delivery: "poll", Receiver: servertest.ServiceName, Audience: "a"},
			&adminv1.CreateSecurityEventStreamResponse{}), codes.OK)
		push := func(change func(*adminv1.CreateSecurityEventStreamRequest)) *adminv1.CreateSecurityEventStreamRequest {
			req := &adminv1.CreateSecurityEventStreamRequest{Id: "siem", Delivery: "push", EndpointUrl: "https://siem.example/ssf", Audience: "https://siem.example"}
			change(req)
			return req
		}
		poll := func(change func(*adminv1.CreateSecurityEventStreamRequest)) *adminv1.CreateSecurityEventStreamRequest {
			req := &adminv1.CreateSecurityEventStreamRequest{Id: "siem", Delivery: "poll", Receiver: servertest.ServiceName, Audience: "https://siem.example"}
			change(req)
			return req
		}
		create := adminv1.AdminService_CreateSecurityEventStream_FullMethodName
		for _, bad := range []struct {
			name, method string
			req          proto.Message
			want         codes.Code
			mention      string
		}{
			{"no id", create, push(func(r *adminv1.CreateSecurityEventStreamRequest) { r.Id = "" }), codes.InvalidArgument, "id"},
			{"an id with a space", create, push(func(r *adminv1.CreateSecurityEventStreamRequest) { r.Id = "the siem" }), codes.InvalidArgument, "id"},
			{"an id too long", create, push(func(r *adminv1.CreateSecurityEventStreamRequest) { r.Id = strings.Repeat("s", 65) }), codes.InvalidArgument, "id"},
			{"a description too long", create, push(func(r *adminv1.CreateSecurityEventStreamRequest) { r.Description = strings.Repeat("d", 257) }),
				codes.InvalidArgument, "description"},
			{"no delivery", create, push(func(r *adminv1.CreateSecurityEventStreamRequest) { r.Delivery = "" }), codes.InvalidArgument, "delivery"},
			{"an unknown delivery", create, push(func(r *adminv1.CreateSecurityEventStreamRequest) { r.Delivery = "pigeon" }), codes.InvalidArgument, "delivery"},
			{"push without endpoint_url", create, push(func(r *adminv1.CreateSecurityEventStreamRequest) { r.EndpointUrl = "" }),
				codes.InvalidArgument, "endpoint_url"},
			{"push to plain http", create, push(func(r *adminv1.CreateSecurityEventStreamRequest) { r.EndpointUrl = "http://siem.example/ssf" }),
				codes.InvalidArgument, "endpoint_url"},
			{"push with a receiver", create, push(func(r *adminv1.CreateSecurityEventStreamRequest) { r.Receiver = servertest.ServiceName }),
				codes.InvalidArgument, "receiver"},
			{"an authorization of two lines", create, push(func(r *adminv1.CreateSecurityEventStreamRequest) {
				r.Authorization = "Bearer receiver-secret\r\nX-Injected: yes"
			}), codes.InvalidArgument, "authorization"},
			{"an authorization too long", create, push(func(r *adminv1.CreateSecurityEventStreamRequest) {
				r.Authorization = "Bearer receiver-secret" + strings.Repeat("x", 4096)
			}), codes.InvalidArgument, "authorization"},
			{"poll without receiver", create, poll(func(r *adminv1.CreateSecurityEventStreamRequest) { r.Receiver = "" }), codes.InvalidArgument, "receiver"},
			{"poll with endpoint_url", create, poll(func(r *adminv1.CreateSecurityEventStreamRequest) { r.EndpointUrl = "https://siem.example/ssf" }),
				codes.InvalidArgument, "endpoint_url"},
			{"poll with an authorization", create, poll(func(r *adminv1.CreateSecurityEventStreamRequest) { r.Authorization = "Bearer receiver-secret" }),
				codes.InvalidArgument, "authorization"},
			{"poll by no service account", create, poll(func(r *adminv1.CreateSecurityEventStreamRequest) { r.Receiver = "nobody" }),
				codes.NotFound, "receiver"},
			{"poll by a person", create, poll(func(r *adminv1.CreateSecurityEventStreamRequest) { r.Receiver = servertest.UserName }),
				codes.NotFound, "receiver"},
			{"no audience", create, push(func(r *adminv1.CreateSecurityEventStreamRequest) { r.Audience = "" }), codes.InvalidArgument, "audience"},
			{"an audience too long", create, push(func(r *adminv1.CreateSecurityEventStreamRequest) { r.Audience = strings.Repeat("a", 256) }),
				codes.InvalidArgument, "audience"},
			{"an unknown event type", create, push(func(r *adminv1.CreateSecurityEventStreamRequest) {
				r.EventTypes = []string{"https://schemas.openid.net/secevent/risc/event-type/account-disabled"}
			}), codes.InvalidArgument, "event_types"},
			{"an event type twice", create, push(func(r *adminv1.CreateSecurityEventStreamRequest) {
				r.EventTypes = []string{"https://schemas.openid.net/secevent/caep/event-type/session-revoked",
					"https://schemas.openid.net/secevent/caep/event-type/session-revoked"}
			}), codes.InvalidArgument, "event_types"},
			{"an unknown status", adminv1.AdminService_SetSecurityEventStreamStatus_FullMethodName,
				&adminv1.SetSecurityEventStreamStatusRequest{Id: "gateway", Status: "sleeping"}, codes.InvalidArgument, "status"},
			{"no status", adminv1.AdminService_SetSecurityEventStreamStatus_FullMethodName,
				&adminv1.SetSecurityEventStreamStatusRequest{Id: "gateway"}, codes.InvalidArgument, "status"},
			{"the status of no stream", adminv1.AdminService_SetSecurityEventStreamStatus_FullMethodName,
				&adminv1.SetSecurityEventStreamStatusRequest{Id: "nothing", Status: "paused"}, codes.NotFound, "nothing"},
			{"a state too long", adminv1.AdminService_VerifySecurityEventStream_FullMethodName,
				&adminv1.VerifySecurityEventStreamRequest{Id: "gateway", State: strings.Repeat("s", 257)}, codes.InvalidArgument, "state"},
			{"get no stream", adminv1.AdminService_GetSecurityEventStream_FullMethodName,
				&adminv1.GetSecurityEventStreamRequest{Id: "nothing"}, codes.NotFound, "nothing"},
			{"a forged page token", adminv1.AdminService_ListSecurityEventStreams_FullMethodName,
				&adminv1.ListSecurityEventStreamsRequest{PageToken: "forged"}, codes.InvalidArgument, "page_token"},
		} {
			servertest.WantCode(t, bad.name, tr.Invoke(t, bad.method, c.Admin, bad.req, responseFor(bad.method)), bad.want)
			// The message, which REST carries too, read over gRPC.
			err := e.Conn.Invoke(servertest.WithBearer(c.Admin), bad.method, bad.req, responseFor(bad.method))
			if status.Code(err) != bad.want || !strings.Contains(status.Convert(err).Message(), bad.mention) {
				t.Errorf("%s: got %v, want %v naming %q", bad.name, err, bad.want, bad.mention)
			}
			if strings.Contains(status.Convert(err).Message(), "receiver-secret") {
				t.Errorf("%s: the message echoes the Authorization value: %v", bad.name, err)
			}
		}
		listed := &adminv1.ListSecurityEventStreamsResponse{}
		servertest.WantCode(t, "list", tr.Invoke(t, adminv1.AdminService_ListSecurityEventStreams_FullMethodName, c.Admin,
			&adminv1.ListSecurityEventStreamsRequest{}, listed), codes.OK)
		if len(listed.GetStreams()) != 1 || listed.GetStreams()[0].GetId() != "gateway" || listed.GetStreams()[0].GetStatus() != "enabled" {
			t.Fatalf("after refused calls the streams are %v", listed.GetStreams())
		}
		if strings.Contains(e.Logs.String(), "receiver-secret") {
			t.Fatal("a refused Authorization value reached the logs")
		}
	})
}

// The streams' REST paths get the gateway's strict Admin API checks: a body
// naming another stream than its path, or a query the call does not take,
// is refused and changes nothing; the paging query of the list is taken.
func TestAdminSecurityEventStreamsRESTIsStrict(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	c := servertest.NewAdminCallers(t, e, servertest.Transports(e)["gRPC"])
	if code, body := servertest.RawAdmin(t, e, http.MethodPost, "/v1/admin/ssf-streams", c.Admin,
		`{"id":"gateway","delivery":"poll","receiver":"`+servertest.ServiceName+`","audience":"a"}`, nil); code != http.StatusOK {
		t.Fatalf("POST /v1/admin/ssf-streams: HTTP %d %s", code, body)
	}
	for _, tc := range []struct{ name, method, path, body, mention string }{
		{"a body naming another stream", http.MethodPut, "/v1/admin/ssf-streams/gateway/status", `{"id":"other","status":"paused"}`, "differs from the path"},
		{"a body naming another stream to verify", http.MethodPost, "/v1/admin/ssf-streams/gateway/verify", `{"id":"other"}`, "differs from the path"},
		{"a query parameter on DELETE", http.MethodDelete, "/v1/admin/ssf-streams/gateway?force=true", "", "force"},
		{"an unknown query parameter on the list", http.MethodGet, "/v1/admin/ssf-streams?status=paused", "", "status"},
		{"an unknown field", http.MethodPut, "/v1/admin/ssf-streams/gateway/status", `{"status":"paused","paused":true}`, "paused"},
	} {
		if code, body := servertest.RawAdmin(t, e, tc.method, tc.path, c.Admin, tc.body, nil); code != http.StatusBadRequest || !strings.Contains(body, tc.mention) {
			t.Errorf("%s: HTTP %d %s, want 400 naming %q", tc.name, code, body, tc.mention)
		}
	}
	code, body := servertest.RawAdmin(t, e, http.MethodGet, "/v1/admin/ssf-streams?pageSize=1", c.Admin, "", nil)
	if code != http.StatusOK || !strings.Contains(body, `"enabled"`) {
		t.Fatalf("after refused requests the list is HTTP %d %s", code, body)
	}
	if code, body := servertest.RawAdmin(t, e, http.MethodPut, "/v1/admin/ssf-streams/gateway/status", c.Admin, `{"id":"gateway","status":"paused"}`, nil); code != http.StatusOK || !strings.Contains(body, `"paused"`) {
		t.Fatalf("PUT .../gateway/status naming its own id: HTTP %d %s", code, body)
	}
}

// A verification the receiver refuses answers FAILED_PRECONDITION with
// the receiver's answer, which the stream's last_error keeps (without the
// Authorization value) and its position does not move.
func TestAdminVerifySecurityEventStreamRefused(t *testing.T) {
	t.Parallel()
	servertest.ForEachTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		c := servertest.NewAdminCallers(t, e, tr)
		refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
		}))
		t.Cleanup(refusing.Close)
		created := &adminv1.CreateSecurityEventStreamResponse{}
		servertest.WantCode(t, "create", tr.Invoke(t, adminv1.AdminService_CreateSecurityEventStream_FullMethodName, c.Admin,
			&adminv1.CreateSecurityEventStreamRequest{Id: "down", Delivery: "push", EndpointUrl: refusing.URL, Authorization: receiverSecret, Audience: "a"},
			created), codes.OK)
		err := e.Conn.Invoke(servertest.WithBearer(c.Admin), adminv1.AdminService_VerifySecurityEventStream_FullMethodName,
			&adminv1.VerifySecurityEventStreamRequest{Id: "down"}, &adminv1.VerifySecurityEventStreamResponse{})
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "503") || strings.Contains(err.Error(), "receiver-secret") {
			t.Fatalf("verify against a refusing receiver: %v", err)
		}
		servertest.WantCode(t, "verify over the transport", tr.Invoke(t, adminv1.AdminService_VerifySecurityEventStream_FullMethodName, c.Admin,
			&adminv1.VerifySecurityEventStreamRequest{Id: "down"}, &adminv1.VerifySecurityEventStreamResponse{}), codes.FailedPrecondition)
		got := &adminv1.GetSecurityEventStreamResponse{}
		servertest.WantCode(t, "get", tr.Invoke(t, adminv1.AdminService_GetSecurityEventStream_FullMethodName, c.Admin,
			&adminv1.GetSecurityEventStreamRequest{Id: "down"}, got), codes.OK)
		if s := got.GetStream(); !strings.Contains(s.GetLastError(), "503") || strings.Contains(s.GetLastError(), "receiver-secret") ||
			s.GetPosition() != created.GetStream().GetPosition() || s.GetDeliveryTime() != nil {
			t.Fatalf("after a refused verification the stream is %v", s)
		}
	})
}
