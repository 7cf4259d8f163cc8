package ssfpush_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/ssf/ssfpush"
)

func TestPush(t *testing.T) {
	const authorization = "Bearer receiver-secret"
	var redirectedTo atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { redirectedTo.Add(1) }))
	t.Cleanup(target.Close)
	hang := make(chan struct{})
	servers := map[string]http.HandlerFunc{
		"accepted": func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/secevent+jwt" || r.Header.Get("Accept") != "application/json" ||
				r.Header.Get("Authorization") != authorization || string(body) != "a.set.jwt" {
				w.WriteHeader(http.StatusTeapot)
				return
			}
			w.WriteHeader(http.StatusAccepted)
		},
		"refused": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"err":"invalid_issuer","description":"unknown issuer"}`)
		},
		"bare 400":    func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadRequest) },
		"unavailable": func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) },
		"redirecting": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
		},
		"hanging": func(w http.ResponseWriter, r *http.Request) { <-hang },
		"endless 400": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadRequest)
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
	client := ssfpush.New(300*time.Millisecond, nil)
	tests := []struct {
		name           string
		status         int
		errCode, descr string
		failed         bool
	}{
		{"accepted", http.StatusAccepted, "", "", false},
		{"refused", http.StatusBadRequest, "invalid_issuer", "unknown issuer", false},
		{"bare 400", http.StatusBadRequest, "", "", false},
		{"unavailable", http.StatusServiceUnavailable, "", "", false},
		{"redirecting", http.StatusTemporaryRedirect, "", "", false},
		{"hanging", 0, "", "", true},
		{"endless 400", http.StatusBadRequest, "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			began := time.Now()
			result := client.Push(context.Background(), urls[tc.name], authorization, "a.set.jwt")
			if result.Status != tc.status || result.ErrCode != tc.errCode || result.Description != tc.descr || (result.Err != nil) != tc.failed {
				t.Fatalf("Push = %+v, want status %d err %q %q failed %t", result, tc.status, tc.errCode, tc.descr, tc.failed)
			}
			if result.Err != nil && strings.Contains(result.Err.Error(), "receiver-secret") {
				t.Fatalf("the error shows the authorization: %v", result.Err)
			}
			if took := time.Since(began); took > 2*time.Second {
				t.Fatalf("Push took %v", took)
			}
		})
	}
	if redirectedTo.Load() != 0 {
		t.Fatal("a redirect was followed")
	}
}
