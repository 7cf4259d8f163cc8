package verifier_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chit-auth/chit/pkg/verifier"
)

// BenchmarkVerify compares today's offline check with the same check
// against a subscribed revocation set of 10,000 entries (a mix of logins,
// principals and clients), for a token that none of them refuses: what the
// set adds to every request is a few map lookups under a read lock.
func BenchmarkVerify(b *testing.B) {
	const entries = 10_000
	for _, subscribed := range []bool{false, true} {
		name := "offline"
		if subscribed {
			name = fmt.Sprintf("revocations=%d", entries)
		}
		b.Run(name, func(b *testing.B) {
			ti := newTestIssuer(b)
			var cfg *verifier.RevocationConfig
			if subscribed {
				cfg = revocationConfig()
				cfg.ReadTimeout = time.Hour
				cfg.MaxStaleness = time.Hour
			}
			v := ti.newVerifier(b, cfg)
			if subscribed {
				conn := ti.accept(b)
				conn.open()
				expires := stamp(ti.clock.Now().Add(time.Hour))
				revokedAt := stamp(ti.clock.Now().Add(-time.Minute))
				var snapshot strings.Builder
				for i := range entries {
					cursor := fmt.Sprint(i)
					switch i % 3 {
					case 0:
						snapshot.WriteString(revocation(cursor, map[string]any{"kind": "family", "familyId": "fam-" + cursor, "expiresAt": expires}))
					case 1:
						snapshot.WriteString(revocation(cursor, map[string]any{"kind": "subject", "subject": "user:" + cursor, "revokedAt": revokedAt, "expiresAt": expires}))
					default:
						snapshot.WriteString(revocation(cursor, map[string]any{"kind": "subject", "subject": "client:app-" + cursor, "revokedAt": revokedAt, "expiresAt": expires}))
					}
				}
				conn.send(snapshot.String(), heartbeat(fmt.Sprint(entries), ti.clock.Now()))
				eventually(b, "the snapshot", fresh(v))
				if got := v.RevocationStatus().Entries; got != entries {
					b.Fatalf("%d entries, want %d", got, entries)
				}
			}
			token := ti.token(b, "kid-1", map[string]any{
				"sub": "user:carol", "fid": "fam-carol", "client_id": "web", "scope": "reports:read",
				"act": map[string]any{"sub": "service:front"},
			})
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := v.Verify(ctx, token); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
