package signinpage

import (
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"time"

	"github.com/chit-auth/chit/internal/authorize"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/clientaddr"
	"github.com/chit-auth/chit/internal/device"
)

var devicePage = template.Must(template.ParseFS(assets, "assets/device.html"))

// DeviceHandler serves the device flow's verification page (RFC 8628
// §3.3): enter (or confirm) the user code, see which client asks for what,
// from where and when, sign in or use the sign-in session, and approve or
// deny. Its forms carry the sign-in page's CSRF token and it answers with
// the same headers (no scripts, no framing).
type DeviceHandler struct {
	page   *Handler
	device *device.Service
	logger *slog.Logger
}

// DeviceDependencies are what the verification page calls.
type DeviceDependencies struct {
	Device *device.Service
	Logger *slog.Logger
}

// NewDevice returns the verification page's handler.
func NewDevice(cfg Config, deps DeviceDependencies) *DeviceHandler {
	return &DeviceHandler{page: &Handler{logger: deps.Logger, httpsOnly: cfg.HTTPSOnly}, device: deps.Device, logger: deps.Logger}
}

// Register adds the page's routes to mux.
func (h *DeviceHandler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+device.VerificationPath, h.show)
	mux.HandleFunc("POST "+device.VerificationPath, h.submit)
}

type deviceView struct {
	CSRFToken   string
	Typed       string
	Error       string
	Request     *device.Request
	ClientName  string
	RequestedAt string
	SignedInAs  string
	Username    string
	Done        string
	DoneHint    string
}

func (h *DeviceHandler) show(w http.ResponseWriter, r *http.Request) {
	token, err := h.page.newCSRFToken(w, r.TLS != nil)
	if err != nil {
		h.page.problem(w, err)
		return
	}
	v := deviceView{CSRFToken: token}
	// verification_uri_complete carries the code: it is shown to be
	// confirmed, never approved by the link alone (RFC 8628 §5.4).
	if typed := r.URL.Query().Get("user_code"); typed != "" {
		h.confirm(w, r, v, typed)
		return
	}
	h.render(w, http.StatusOK, v)
}

// confirm shows the request of a typed code, or the code form again with
// why not.
func (h *DeviceHandler) confirm(w http.ResponseWriter, r *http.Request, v deviceView, typed string) {
	request, err := h.device.Lookup(r.Context(), typed, clientaddr.From(r.Context()))
	if err != nil {
		v.Typed = typed
		h.fail(w, r, v, err)
		return
	}
	h.showRequest(w, r, v, request, http.StatusOK)
}

func (h *DeviceHandler) showRequest(w http.ResponseWriter, r *http.Request, v deviceView, request device.Request, status int) {
	v.Request = &request
	v.ClientName = request.ClientID
	if request.ClientID == authorize.CLIClientID {
		v.ClientName = "the Chit command line"
	}
	v.RequestedAt = request.RequestedAt.UTC().Format(time.RFC1123)
	person, _, ok, err := h.device.SessionPerson(r.Context(), SessionCookieValue(r, h.page.httpsOnly))
	if err != nil {
		h.page.problem(w, err)
		return
	}
	if ok {
		v.SignedInAs = person.Subject
	}
	h.render(w, status, v)
}

func (h *DeviceHandler) submit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		message := "the form could not be read"
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
			message = fmt.Sprintf("the form is larger than %d KiB", maxFormBytes>>10)
		}
		h.page.problem(w, chiterr.New(chiterr.InvalidArgument, "%s", message))
		return
	}
	if !h.page.validCSRF(r) {
		h.page.problem(w, chiterr.New(chiterr.PermissionDenied, "the form has expired or did not come from this page; reload the page"))
		return
	}
	ctx := r.Context()
	address := clientaddr.From(ctx)
	typed := r.PostForm.Get("user_code")
	v := deviceView{CSRFToken: r.PostForm.Get("csrf_token")}
	switch r.PostForm.Get("action") {
	case "approve":
		approved, err := h.device.Approve(ctx, device.Approval{UserCode: typed, Address: address, Username: r.PostForm.Get("username"),
			Password: r.PostForm.Get("password"), SessionCookie: SessionCookieValue(r, h.page.httpsOnly)})
		if err != nil {
			h.failOnRequest(w, r, v, typed, err)
			return
		}
		if approved.SessionCookie != "" {
			h.page.setSessionCookie(w, r.TLS != nil, approved.SessionCookie, approved.Session.ExpiresAt)
		}
		v.Done, v.DoneHint = "Device approved", "You can close this page and go back to the device."
		h.render(w, http.StatusOK, v)
	case "deny":
		if err := h.device.Deny(ctx, typed, address); err != nil {
			h.failOnRequest(w, r, v, typed, err)
			return
		}
		v.Done, v.DoneHint = "Request denied", "The device was not given access. You can close this page."
		h.render(w, http.StatusOK, v)
	default:
		h.confirm(w, r, v, typed)
	}
}

// failOnRequest answers a refused approval: a wrong password shows the
// request again; a code gone bad shows the code form.
func (h *DeviceHandler) failOnRequest(w http.ResponseWriter, r *http.Request, v deviceView, typed string, err error) {
	kind := chiterr.KindOf(err)
	if kind == chiterr.Unauthenticated || (kind == chiterr.InvalidArgument && chiterr.ReasonOf(err) == "") {
		request, lookupErr := h.device.Lookup(r.Context(), typed, clientaddr.From(r.Context()))
		if lookupErr == nil {
			v.Error, v.Username = chiterr.PublicMessage(err), r.PostForm.Get("username")
			status := http.StatusBadRequest
			if kind == chiterr.Unauthenticated {
				v.Error, status = "Wrong username or password.", http.StatusUnauthorized
			}
			h.showRequest(w, r, v, request, status)
			return
		}
	}
	v.Typed = typed
	h.fail(w, r, v, err)
}

// fail shows the code form with why the code cannot be used.
func (h *DeviceHandler) fail(w http.ResponseWriter, r *http.Request, v deviceView, err error) {
	status := http.StatusBadRequest
	v.Error = chiterr.PublicMessage(err)
	switch chiterr.KindOf(err) {
	case chiterr.ResourceExhausted:
		status = http.StatusTooManyRequests
		retryAfter(w, err)
	case chiterr.Unavailable:
		h.logger.ErrorContext(r.Context(), "device verification failed", "error", err)
		status, v.Error = http.StatusServiceUnavailable, unavailableMessage
		retryAfter(w, err)
	case chiterr.NotFound, chiterr.InvalidArgument, chiterr.FailedPrecondition, chiterr.PermissionDenied:
	default:
		h.logger.ErrorContext(r.Context(), "device verification failed", "error", err)
		status, v.Error = http.StatusInternalServerError, "internal error"
	}
	v.Request = nil
	h.render(w, status, v)
}

func (h *DeviceHandler) render(w http.ResponseWriter, status int, v deviceView) {
	h.page.securityHeaders(w, "")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := devicePage.Execute(w, v); err != nil {
		h.logger.Error("render device page", "error", err)
	}
}
