package rendezvous

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// freeAddr returns 127.0.0.1:port with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// run starts ranks (one goroutine each) of a world at addr and returns each rank's payload and error.
func run(t *testing.T, addr string, worlds []int, ranks []int, payload []byte, timeout time.Duration) ([][]byte, []error) {
	t.Helper()
	got := make([][]byte, len(ranks))
	errs := make([]error, len(ranks))
	var wg sync.WaitGroup
	for i, r := range ranks {
		wg.Go(func() {
			var p []byte
			if r == 0 {
				p = payload
			}
			got[i], errs[i] = Exchange(context.Background(), Env{Rank: r, World: worlds[i], LocalRank: r, Addr: addr}, p, timeout)
		})
	}
	wg.Wait()
	return got, errs
}

func TestExchangeWorldOfFour(t *testing.T) {
	payload := bytes.Repeat([]byte{0xab, 0x00, 0x17}, 43) // 129 bytes, like NCCL's 128-byte id
	addr := freeAddr(t)
	got, errs := run(t, addr, []int{4, 4, 4, 4}, []int{3, 1, 0, 2}, payload, 10*time.Second)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("rank at %d: %v", i, err)
		}
		if !bytes.Equal(got[i], payload) {
			t.Fatalf("rank at %d got %x, want %x", i, got[i], payload)
		}
	}
}

func TestExchangeWorldOfOne(t *testing.T) {
	got, err := Exchange(context.Background(), Env{World: 1, Addr: "127.0.0.1:1"}, []byte("id"), time.Second)
	if err != nil || string(got) != "id" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestExchangeTimeoutNamesMissingRank(t *testing.T) {
	addr := freeAddr(t)
	start := time.Now()
	_, errs := run(t, addr, []int{3, 3}, []int{0, 1}, []byte("id"), 500*time.Millisecond)
	if time.Since(start) > 5*time.Second {
		t.Fatalf("the rendezvous took %v with a timeout of 500ms", time.Since(start))
	}
	if errs[1] != nil {
		t.Fatalf("rank 1: %v", errs[1])
	}
	if errs[0] == nil || !strings.Contains(errs[0].Error(), "2 of 3 ranks joined") || !strings.Contains(errs[0].Error(), "missing: rank 2") {
		t.Fatalf("rank 0: got %v, want an error saying 2 of 3 ranks joined, rank 2 missing", errs[0])
	}
}

func TestExchangeNoRankZero(t *testing.T) {
	addr := freeAddr(t)
	_, err := Exchange(context.Background(), Env{Rank: 1, World: 2, Addr: addr}, nil, 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "could not reach rank 0") {
		t.Fatalf("got %v, want an error saying rank 0 could not be reached", err)
	}
}

func TestExchangeWrongWorldSize(t *testing.T) {
	addr := freeAddr(t)
	_, errs := run(t, addr, []int{2, 3}, []int{0, 1}, []byte("id"), 5*time.Second)
	for i, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "WORLD_SIZE=3") || !strings.Contains(err.Error(), "WORLD_SIZE=2") {
			t.Errorf("rank %d: got %v, want an error naming both world sizes", i, err)
		}
	}
}

func TestExchangeDuplicateRank(t *testing.T) {
	addr := freeAddr(t)
	_, errs := run(t, addr, []int{3, 3, 3}, []int{0, 1, 1}, []byte("id"), 5*time.Second)
	if errs[0] == nil || !strings.Contains(errs[0].Error(), "rank 1 joined twice") {
		t.Fatalf("rank 0: got %v, want an error saying rank 1 joined twice", errs[0])
	}
}

func TestExchangeIgnoresStrangers(t *testing.T) {
	addr := freeAddr(t)
	done := make(chan error, 1)
	go func() {
		_, err := Exchange(context.Background(), Env{Rank: 0, World: 2, Addr: addr}, []byte("id"), 5*time.Second)
		done <- err
	}()
	// A client that is not a rank (a port scan) must not count or fail the rendezvous.
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_, _ = c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
			c.Close()
			break
		}
		if i > 100 {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	got, err := Exchange(context.Background(), Env{Rank: 1, World: 2, Addr: addr}, nil, 5*time.Second)
	if err != nil || string(got) != "id" {
		t.Fatalf("rank 1: %q, %v", got, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("rank 0: %v", err)
	}
}

func TestExchangeStrangerAnswers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, _ = c.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n"))
			c.Close()
		}
	}()
	_, err = Exchange(context.Background(), Env{Rank: 1, World: 2, Addr: ln.Addr().String()}, nil, 2*time.Second)
	if err == nil || !strings.Contains(err.Error(), "something other than t2m's rendezvous") {
		t.Fatalf("got %v", err)
	}
}

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestFromEnv(t *testing.T) {
	good := []struct {
		name string
		env  func(string) string
		want Env
		ok   bool
	}{
		{"unset", env(), Env{}, false},
		{"world of one", env("WORLD_SIZE", "1", "RANK", "0"), Env{World: 1}, false},
		{"slurm single task", env("SLURM_NTASKS", "1", "SLURM_PROCID", "0"), Env{World: 1}, false},
		{"torchrun", env("RANK", "3", "WORLD_SIZE", "8", "LOCAL_RANK", "1", "MASTER_ADDR", "node0", "MASTER_PORT", "29500"),
			Env{Rank: 3, World: 8, LocalRank: 1, Addr: "node0:29500"}, true},
		{"no local rank", env("RANK", "1", "WORLD_SIZE", "2", "MASTER_ADDR", "::1", "MASTER_PORT", "1234"),
			Env{Rank: 1, World: 2, LocalRank: 1, Addr: "[::1]:1234"}, true},
		{"slurm", env("SLURM_PROCID", "5", "SLURM_NTASKS", "8", "SLURM_LOCALID", "1", "MASTER_ADDR", "10.0.0.1", "MASTER_PORT", "29500"),
			Env{Rank: 5, World: 8, LocalRank: 1, Addr: "10.0.0.1:29500"}, true},
		{"torchrun wins over slurm", env("RANK", "0", "WORLD_SIZE", "2", "LOCAL_RANK", "0", "SLURM_PROCID", "7", "SLURM_NTASKS", "9",
			"MASTER_ADDR", "h", "MASTER_PORT", "1"), Env{Rank: 0, World: 2, Addr: "h:1"}, true},
	}
	for _, c := range good {
		got, ok, err := FromEnv(c.env)
		if err != nil || ok != c.ok || got != c.want {
			t.Errorf("%s: got %+v, %v, %v; want %+v, %v", c.name, got, ok, err, c.want, c.ok)
		}
	}
	bad := []struct {
		name, mention string
		env           func(string) string
	}{
		{"rank not a number", "RANK=\"x\"", env("RANK", "x", "WORLD_SIZE", "2", "MASTER_ADDR", "h", "MASTER_PORT", "1")},
		{"world not a number", "WORLD_SIZE=\"two\"", env("RANK", "0", "WORLD_SIZE", "two")},
		{"world zero", "WORLD_SIZE=0", env("RANK", "0", "WORLD_SIZE", "0")},
		{"rank out of range", "RANK=2", env("RANK", "2", "WORLD_SIZE", "2", "MASTER_ADDR", "h", "MASTER_PORT", "1")},
		{"negative rank", "RANK=-1", env("RANK", "-1", "WORLD_SIZE", "2", "MASTER_ADDR", "h", "MASTER_PORT", "1")},
		{"rank without world", "WORLD_SIZE", env("RANK", "1")},
		{"world without rank", "RANK", env("WORLD_SIZE", "4")},
		{"local rank out of range", "LOCAL_RANK=4", env("RANK", "1", "WORLD_SIZE", "4", "LOCAL_RANK", "4", "MASTER_ADDR", "h", "MASTER_PORT", "1")},
		{"no master addr", "MASTER_ADDR", env("RANK", "1", "WORLD_SIZE", "4", "MASTER_PORT", "1")},
		{"no master port", "MASTER_PORT", env("RANK", "1", "WORLD_SIZE", "4", "MASTER_ADDR", "h")},
		{"port not a number", "MASTER_PORT=http", env("RANK", "1", "WORLD_SIZE", "4", "MASTER_ADDR", "h", "MASTER_PORT", "http")},
		{"port too big", "MASTER_PORT=65536", env("RANK", "1", "WORLD_SIZE", "4", "MASTER_ADDR", "h", "MASTER_PORT", "65536")},
		{"port zero", "MASTER_PORT=0", env("RANK", "1", "WORLD_SIZE", "4", "MASTER_ADDR", "h", "MASTER_PORT", "0")},
		{"slurm without master", "MASTER_ADDR", env("SLURM_PROCID", "1", "SLURM_NTASKS", "2")},
		{"slurm rank out of range", "SLURM_PROCID=2", env("SLURM_PROCID", "2", "SLURM_NTASKS", "2")},
	}
	for _, c := range bad {
		_, ok, err := FromEnv(c.env)
		if err == nil || ok || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("%s: got ok=%v, %v; want an error mentioning %s", c.name, ok, err, c.mention)
		}
	}
}

func TestFromEnvThenExchange(t *testing.T) {
	host, port, _ := net.SplitHostPort(freeAddr(t))
	envs := make([]Env, 2)
	for r := range envs {
		e, ok, err := FromEnv(env("RANK", strconv.Itoa(r), "WORLD_SIZE", "2", "MASTER_ADDR", host, "MASTER_PORT", port))
		if err != nil || !ok {
			t.Fatalf("rank %d: %v, %v", r, ok, err)
		}
		envs[r] = e
	}
	var wg sync.WaitGroup
	got := make([][]byte, 2)
	errs := make([]error, 2)
	for r := range envs {
		wg.Go(func() { got[r], errs[r] = Exchange(context.Background(), envs[r], []byte("nccl-id"), 5*time.Second) })
	}
	wg.Wait()
	for r := range envs {
		if errs[r] != nil || string(got[r]) != "nccl-id" {
			t.Fatalf("rank %d: %q, %v", r, got[r], errs[r])
		}
	}
}
