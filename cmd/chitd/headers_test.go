package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2/hpack"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	"github.com/chit-auth/chit/internal/server/servertest"
)

// procStatusKiB reads a memory field of /proc/PID/status (VmRSS, the
// resident set; VmHWM, its peak) in KiB.
func procStatusKiB(t *testing.T, pid int, field string) int {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if value, ok := strings.CutPrefix(line, field+":"); ok {
			kib, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(value), " kB"))
			if err != nil {
				t.Fatalf("%s: %q", field, line)
			}
			return kib
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, field)
	return 0
}

// Two dozen gRPC calls carrying 15 MiB of metadata each, sent at once by a
// client that ignores the server's SETTINGS_MAX_HEADER_LIST_SIZE, leave
// chitd's memory where it was: the header lists are refused as they arrive,
// unread. At grpc-go's default bound (16 MiB) the same calls were read and
// decoded in full and answered UNAUTHENTICATED, and chitd grew from 128 MB
// to 1.42 GB. The peak resident set is measured, so the test holds however
// soon the garbage collector would have run.
func TestHeaderFloodLeavesMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("starts chitd")
	}
	const calls, metadataBytes, allowedGrowthKiB = 24, 15 << 20, 100 << 10
	binary := buildChitd(t)
	chitd := startServer(t, binary, "--data-dir", t.TempDir())
	pid := chitd.cmd.Process.Pid
	// Writing 5 resets the peak to the current resident set (proc(5)).
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		t.Skipf("cannot reset the peak resident set: %v", err)
	}
	before := procStatusKiB(t, pid, "VmRSS")

	padding := make([]hpack.HeaderField, metadataBytes>>10)
	for i := range padding {
		padding[i] = hpack.HeaderField{Name: fmt.Sprintf("x-padding-%d", i), Value: strings.Repeat("a", 1<<10)}
	}
	block := servertest.EncodeRawCall(adminv1.AdminService_ListUsers_FullMethodName, padding)
	answers := make([]servertest.RawAnswer, calls)
	errs := make([]error, calls)
	deadline := time.Now().Add(60 * time.Second)
	var wg sync.WaitGroup
	for i := range calls {
		wg.Go(func() { answers[i], errs[i] = servertest.SendRawCall(chitd.grpcAddr, block, deadline) })
	}
	wg.Wait()
	peak := procStatusKiB(t, pid, "VmHWM")
	t.Logf("chitd: %d MiB resident before, peak %d MiB during %d calls of %d MiB of metadata; %d MiB resident after",
		before>>10, peak>>10, calls, metadataBytes>>20, procStatusKiB(t, pid, "VmRSS")>>10)
	for i := range calls {
		if errs[i] != nil || answers[i].GRPCStatus != "" {
			t.Errorf("call %d: %v (%v), want the call refused before any answer", i, answers[i], errs[i])
		}
	}
	if growth := peak - before; growth > allowedGrowthKiB {
		t.Fatalf("chitd's resident set grew by %d MiB under the header flood, want under %d MiB", growth>>10, allowedGrowthKiB>>10)
	}
}
