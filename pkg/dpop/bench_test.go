package dpop

import (
	"net/http"
	"strconv"
	"testing"
	"time"
)

// BenchmarkVerify is one resource call's proof check (RFC 9449 §4.3 with
// ath, a fresh jti each time), the cost a DPoP-bound CheckToken adds to a
// bearer one; the ES256 signature's verification is most of it.
func BenchmarkVerify(b *testing.B) {
	signer, err := GenerateSigner()
	if err != nil {
		b.Fatal(err)
	}
	const token = "an-access-token"
	proofs := make([]string, 20_000)
	for i := range proofs {
		if proofs[i], err = signer.Proof(http.MethodGet, target, token, ""); err != nil {
			b.Fatal(err)
		}
	}
	v := NewVerifier(Config{})
	req := Request{Method: http.MethodGet, URL: target, AccessToken: token, JKT: signer.Thumbprint()}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == len(proofs) {
			// Every proof was used: a fresh memory takes them again.
			b.StopTimer()
			v, i = NewVerifier(Config{}), 0
			b.StartTimer()
		}
		if _, err := v.Verify(proofs[i], req); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkReplayMemory is the cost of recording one accepted proof in a
// memory holding a full window of them, and what a record occupies.
func BenchmarkReplayMemory(b *testing.B) {
	m := newReplayMemory(DefaultMaxReplayRecords)
	now := epoch
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		// 15,000 proofs a second, the default's sustained rate.
		if i%15_000 == 0 {
			now = now.Add(time.Second)
		}
		if err := m.remember("jkt", strconv.Itoa(i), now.Add(DefaultMaxAge), now); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
