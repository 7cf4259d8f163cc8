package backchannel_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/logout/backchannel"
)

func TestDeliver(t *testing.T) {
	const token = "secret.logout.token"
	var redirectedTo atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { redirectedTo.Add(1) }))
	t.Cleanup(target.Close)
	hang := make(chan struct{})
	servers := map[string]http.HandlerFunc{
		"ok": func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || r.FormValue("logout_token") != token {
				w.WriteHeader(http.StatusBadRequest)
			}
		},
		"no content": func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) },
		"refusing":   func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) },
		"redirecting": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
		},
		"hanging": func(w http.ResponseWriter, r *http.Request) { <-hang },
		"endless answer": func(w http.ResponseWriter, r *http.Request) {
			chunk := []byte(strings.Repeat("x", 1<<10))
			for r.Context().Err() == nil {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		},
	}
	urls := map[string]string{}
	for name, handler := range servers {
		server := httptest.NewServer(handler)
		t.Cleanup(server.Close)
		urls[name] = server.URL
	}
	t.Cleanup(func() { close(hang) })
	client := backchannel.New(300*time.Millisecond, nil)
	for name, wantOK := range map[string]bool{"ok": true, "no content": true, "refusing": false, "redirecting": false, "hanging": false, "endless answer": true} {
		t.Run(name, func(t *testing.T) {
			began := time.Now()
			err := client.Deliver(context.Background(), urls[name], token)
			if (err == nil) != wantOK {
				t.Fatalf("Deliver: %v, want ok %t", err, wantOK)
			}
			if err != nil && strings.Contains(err.Error(), token) {
				t.Fatalf("the error shows the token: %v", err)
			}
			if took := time.Since(began); took > 2*time.Second {
				t.Fatalf("Deliver took %v", took)
			}
		})
	}
	if redirectedTo.Load() != 0 {
		t.Fatal("a redirect was followed")
	}
}
