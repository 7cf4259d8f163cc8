package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
)

// adminPathFields names, for each Admin API collection, the field its
// paths carry ({name}, {client_id}) and the names a JSON body may give it.
var adminPathFields = map[string][]string{
	"users":            {"name"},
	"service-accounts": {"clientId", "client_id"},
	"clients":          {"clientId", "client_id"},
	"providers":        {"id"},
	"subjects":         {"subject"},
	"api-keys":         {"id"},
	"ssf-streams":      {"id"},
}

// adminListQuery is all a query string may hold on the Admin API: the
// paging of its lists.
var adminListQuery = map[string]bool{"pageSize": true, "page_size": true, "pageToken": true, "page_token": true}

// strictAdmin refuses on the Admin API what grpc-gateway would otherwise
// ignore or reinterpret: an operator's request must mean exactly what it
// says, or fail. It refuses a method override header (a POST turned into a
// DELETE past a proxy's method rules), query parameters other than a list's
// paging (DELETE ...?dryRun=true would delete), a body on GET or DELETE,
// anything after the body's one JSON value, and a body naming another
// principal than its path.
func strictAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := checkAdminRequest(r); err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			body, _ := json.Marshal(map[string]any{"code": 3, "message": err.Error()})
			_, _ = w.Write(body)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func checkAdminRequest(r *http.Request) error {
	if r.Header.Get("X-HTTP-Method-Override") != "" {
		return errors.New("X-HTTP-Method-Override is not accepted on the Admin API: send the method itself")
	}
	segments := strings.Split(strings.Trim(r.URL.Path, "/"), "/") // v1 admin <collection> [<id> [<part>]]
	// Lists are the collections (/v1/admin/users) and a subject's logins.
	isList := len(segments) == 3 || (len(segments) == 5 && segments[2] == "subjects" && (segments[4] == "logins" || segments[4] == "api-keys"))
	for name := range r.URL.Query() {
		if !(r.Method == http.MethodGet && isList && adminListQuery[name]) {
			return errors.New("query parameter " + quoteField(name) + " is not accepted here")
		}
	}
	if r.Method == http.MethodGet || r.Method == http.MethodDelete || r.Method == http.MethodHead {
		if r.ContentLength > 0 || (r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody) {
			return errors.New(r.Method + " takes no request body")
		}
		return nil
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return errors.New("request body too large or unreadable")
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	decoder := json.NewDecoder(bytes.NewReader(raw))
	var fields map[string]json.RawMessage
	if err := decoder.Decode(&fields); err != nil {
		return errors.New("the request body must be one JSON object")
	}
	if _, err := decoder.Token(); !errors.Is(err, io.EOF) {
		return errors.New("the request body must be one JSON object, with nothing after it")
	}
	if len(segments) >= 4 {
		for _, field := range adminPathFields[segments[2]] {
			value, ok := fields[field]
			if !ok {
				continue
			}
			var named string
			if json.Unmarshal(value, &named) != nil || named != segments[3] {
				return errors.New("the body's " + field + " differs from the path's; leave it out")
			}
		}
	}
	return nil
}

// quoteField quotes a client's field name for a message, cut short.
func quoteField(name string) string {
	if len(name) > 64 {
		name = name[:64] + "..."
	}
	encoded, _ := json.Marshal(name)
	return string(encoded)
}
