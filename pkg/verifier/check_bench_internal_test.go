package verifier

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkRevocationCheck is the part of BenchmarkVerify the revocation set
// adds: the lookups for a token no entry of 10,000 refuses.
func BenchmarkRevocationCheck(b *testing.B) {
	now := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	set := newRevocationSet(20_000)
	for i := range 10_000 {
		record := revocationRecord{Kind: kindFamily, FamilyID: fmt.Sprint("fam-", i), ExpiresAt: now.Add(time.Hour)}
		if i%2 == 1 {
			record = revocationRecord{Kind: kindSubject, Subject: fmt.Sprint("user:", i), RevokedAt: now.Add(-time.Minute), ExpiresAt: now.Add(time.Hour)}
		}
		if _, err := set.add(record, now, 30*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	claims := &Claims{Subject: "user:carol", FamilyID: "fam-carol", ClientID: "web", SubjectClientID: "cli",
		Actor: &Actor{Subject: "service:front"}, issuedAtPrecisely: now}
	b.ReportAllocs()
	for b.Loop() {
		if why := set.refusal(claims, "kid-1", now); why != "" {
			b.Fatal(why)
		}
	}
}
