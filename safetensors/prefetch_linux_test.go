//go:build linux

package safetensors

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// mappedRSS is the resident size in bytes of the process mapping that holds addr (/proc/self/smaps).
func mappedRSS(t *testing.T, addr uintptr) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	inside := false
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x", &lo, &hi); n == 2 && strings.Contains(line, " ") {
			inside = addr >= lo && addr < hi
			continue
		}
		if inside && strings.HasPrefix(line, "Rss:") {
			kb, err := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no mapping holds %#x", addr)
	return 0
}

// Prefetch maps a tensor's pages into the process (its mapping's resident size grows by the tensor's size
// without the bytes being read), Release drops them again, the bytes stay the same, and an unknown name is
// an error.
func TestPrefetchMapsPages(t *testing.T) {
	path := filepath.Join(t.TempDir(), SingleFile)
	page := os.Getpagesize()
	big := make([]byte, 2048*page) // 8 MiB of u8
	for i := range big {
		big[i] = byte(i * 7)
	}
	if err := Write(path, []Tensor{U8Tensor("big", []int{len(big)}, big)}, nil); err != nil {
		t.Fatal(err)
	}
	d, err := OpenDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var r Reader = d
	p, ok := r.(Prefetcher)
	if !ok {
		t.Fatal("Dir is not a Prefetcher")
	}
	raw, err := d.Raw("big")
	if err != nil {
		t.Fatal(err)
	}
	addr := uintptr(unsafe.Pointer(&raw[0]))
	before := mappedRSS(t, addr)
	if before > int64(len(big))/2 {
		t.Fatalf("%d bytes of the %d-byte tensor are mapped before Prefetch: nothing to measure", before, len(big))
	}
	if err := p.Prefetch("big"); err != nil {
		t.Fatal(err)
	}
	if after := mappedRSS(t, addr); after < int64(len(big)) {
		t.Errorf("after Prefetch %d bytes of the %d-byte tensor are mapped (%d before)", after, len(big), before)
	}
	if err := d.Release("big"); err != nil {
		t.Fatal(err)
	}
	if left := mappedRSS(t, addr); left > before+int64(2*page) {
		t.Errorf("after Release %d bytes stay mapped (%d before Prefetch)", left, before)
	}
	if string(raw) != string(big) {
		t.Error("the tensor's bytes changed")
	}
	if err := p.Prefetch("nope"); err == nil {
		t.Error("prefetching an unknown tensor succeeded")
	}
}
