#!/usr/bin/env bash
# The SDK verifier's figures for bench/results.md: BenchmarkVerify offline and
# subscribed to a revocation set of 10,000 entries, in turns (five runs of
# both, one after the other, so that the machine's drift falls on both), their
# medians and the target: the subscribed check costs at most 10% more; then the
# DPoP proof check's benchmarks.
set -euo pipefail
go=${GO:-go}
runs=${RUNS:-5}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for _ in $(seq "$runs"); do
  (cd "$(dirname "$0")/../pkg" && "$go" test -run='^$' -bench='^Benchmark(Verify|RevocationCheck)$' -benchmem -benchtime=1s ./verifier) |
    grep -E '^Benchmark' >>"$out"
done
echo
echo '## SDK verifier (pkg/verifier)'
echo
echo "BenchmarkVerify, offline and with a subscribed revocation set of 10,000 entries, $runs runs in turns; medians:"
echo
echo '```'
cat "$out"
echo '```'
echo
awk -v runs="$runs" '
  function median(list, n,   i, j, t) {
    for (i = 2; i <= n; i++) for (j = i; j > 1 && list[j-1] > list[j]; j--) { t = list[j]; list[j] = list[j-1]; list[j-1] = t }
    return n % 2 ? list[(n+1)/2] : (list[n/2] + list[n/2+1]) / 2
  }
  /^BenchmarkVerify\/offline/ { off[++o] = $3 }
  /^BenchmarkVerify\/revocations=/ { sub_[++s] = $3 }
  /^BenchmarkRevocationCheck/ { chk[++c] = $3 }
  END {
    mo = median(off, o); ms = median(sub_, s); mc = median(chk, c)
    printf "- offline check: %.1f µs; subscribed: %.1f µs; the set'"'"'s lookups alone (BenchmarkRevocationCheck): %.0f ns\n", mo/1000, ms/1000, mc
    r = ms / mo
    printf "- subscribed / offline check: %.3f (target at most 1.100): %s\n", r, (r <= 1.10 ? "met" : "**not met**")
  }' "$out"
echo
echo 'A DPoP proof check (pkg/dpop: a resource call'"'"'s proof, ES256, fresh jti, ath) and a replay record, once:'
echo
echo '```'
(cd "$(dirname "$0")/../pkg" && "$go" test -run='^$' -bench='^Benchmark(Verify|ReplayMemory)$' -benchmem -benchtime=1s ./dpop) | grep -E '^Benchmark'
echo '```'
