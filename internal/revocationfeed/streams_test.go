package revocationfeed

import (
	"testing"

	"github.com/chit-auth/chit/internal/chiterr"
)

// A caller holds at most MaxStreamsPerCaller streams; another caller is
// counted apart; a released stream frees its place, once however often
// release is called.
func TestAdmitBoundsTheStreamsOfEachCaller(t *testing.T) {
	feed := New(Config{MaxStreamsPerCaller: 2}, nil)
	first, err := feed.Admit("service:verifier")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := feed.Admit("service:verifier"); err != nil {
		t.Fatal(err)
	}
	if _, err := feed.Admit("service:verifier"); chiterr.KindOf(err) != chiterr.ResourceExhausted {
		t.Fatalf("a third stream: %v, want ResourceExhausted", err)
	}
	if _, err := feed.Admit("service:other"); err != nil {
		t.Fatalf("another caller's stream: %v", err)
	}
	first()
	first()
	if _, err := feed.Admit("service:verifier"); err != nil {
		t.Fatalf("a stream after one was released: %v", err)
	}
	if _, err := feed.Admit("service:verifier"); chiterr.KindOf(err) != chiterr.ResourceExhausted {
		t.Fatalf("a released stream freed two places: %v", err)
	}
}

func TestAdmitDefaultsToDefaultMaxStreamsPerCaller(t *testing.T) {
	feed := New(Config{}, nil)
	for i := range DefaultMaxStreamsPerCaller {
		if _, err := feed.Admit("service:verifier"); err != nil {
			t.Fatalf("stream %d: %v", i+1, err)
		}
	}
	if _, err := feed.Admit("service:verifier"); chiterr.KindOf(err) != chiterr.ResourceExhausted {
		t.Fatalf("stream %d: %v, want ResourceExhausted", DefaultMaxStreamsPerCaller+1, err)
	}
}
