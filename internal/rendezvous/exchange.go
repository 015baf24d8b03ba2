package rendezvous

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	magic      = "T2MR"
	version    = 1
	maxPayload = 1 << 20 // NCCL's unique id is 128 bytes; anything near this is not a t2m rank
	statusOK   = 0
	statusBad  = 1
)

// Exchange hands rank 0's payload to every rank of e and returns it (on rank 0: payload itself). Rank 0
// listens on e.Addr's port (all interfaces) and returns once each of the World−1 other ranks has read the
// payload; the other ranks dial e.Addr, retrying until rank 0 listens, and return what it sent (their
// payload argument is ignored). Every rank gives up after timeout (or when ctx ends) with an error saying
// how far the rendezvous got.
func Exchange(ctx context.Context, e Env, payload []byte, timeout time.Duration) ([]byte, error) {
	if e.World < 1 || e.Rank < 0 || e.Rank >= e.World {
		return nil, fmt.Errorf("rendezvous: rank %d of a world of %d", e.Rank, e.World)
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("rendezvous: timeout %v: must be positive", timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if e.Rank == 0 {
		if len(payload) > maxPayload {
			return nil, fmt.Errorf("rendezvous: payload of %d bytes, at most %d", len(payload), maxPayload)
		}
		if e.World == 1 {
			return slices.Clone(payload), nil
		}
		return slices.Clone(payload), serve(ctx, e, payload, timeout)
	}
	return join(ctx, e, timeout)
}

// joined is what one connection on rank 0 came to: a rank that read the payload, a refused rank (err
// set, fatal), or a connection that was not a t2m rank (rank −1, ignored).
type joined struct {
	rank int
	from string
	err  error
}

// serve is rank 0's side: accept until every other rank has read the payload.
func serve(ctx context.Context, e Env, payload []byte, timeout time.Duration) error {
	_, port, err := net.SplitHostPort(e.Addr)
	if err != nil {
		return fmt.Errorf("rendezvous: address %q: %w", e.Addr, err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort("", port))
	if err != nil {
		return fmt.Errorf("rendezvous: rank 0 cannot listen on port %s (MASTER_PORT): %w; is another run "+
			"using it? pick another MASTER_PORT", port, err)
	}
	defer ln.Close()
	go func() { <-ctx.Done(); ln.Close() }()

	results := make(chan joined)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed: ctx ended or serve returned
			}
			go func() {
				j := handle(ctx, c, e.World, payload)
				select {
				case results <- j:
				case <-ctx.Done():
				}
			}()
		}
	}()

	seen := map[int]string{} // rank → the address it joined from
	for len(seen) < e.World-1 {
		select {
		case j := <-results:
			switch {
			case j.err != nil:
				return j.err
			case j.rank < 0:
				continue
			}
			if prev, dup := seen[j.rank]; dup {
				return fmt.Errorf("rendezvous: rank %d joined twice (from %s and %s): two processes have the same RANK", j.rank, prev, j.from)
			}
			seen[j.rank] = j.from
		case <-ctx.Done():
			var missing []string
			for r := 1; r < e.World; r++ {
				if _, ok := seen[r]; !ok {
					missing = append(missing, strconv.Itoa(r))
				}
			}
			why := fmt.Sprintf("within %v", timeout)
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				why = "before it was cancelled"
			}
			return fmt.Errorf("rendezvous: %d of %d ranks joined rank 0 on port %s %s (missing: rank %s); "+
				"check that every process was started with the same WORLD_SIZE, MASTER_ADDR and MASTER_PORT",
				len(seen)+1, e.World, port, why, strings.Join(missing, ", "))
		}
	}
	return nil
}

// handle answers one connection on rank 0: it reads the hello, refuses a rank that does not fit e, or
// sends the payload and waits for the acknowledgement.
func handle(ctx context.Context, c net.Conn, world int, payload []byte) joined {
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	from := c.RemoteAddr().String()
	var hello [4 + 1 + 4 + 4]byte
	if _, err := io.ReadFull(c, hello[:]); err != nil || string(hello[:4]) != magic {
		return joined{rank: -1, from: from} // not a t2m rank (a port scan, a health check): ignore it
	}
	if hello[4] != version {
		msg := fmt.Sprintf("rank 0 speaks rendezvous version %d, this process %d: run the same t2m on every rank", version, hello[4])
		reply(c, statusBad, world, []byte(msg))
		return joined{err: fmt.Errorf("rendezvous: a process at %s speaks rendezvous version %d, rank 0 version %d: run the same t2m on every rank", from, hello[4], version)}
	}
	theirWorld := int(binary.BigEndian.Uint32(hello[5:9]))
	rank := int(int32(binary.BigEndian.Uint32(hello[9:13])))
	var why string
	switch {
	case theirWorld != world:
		why = fmt.Sprintf("rank %d at %s has WORLD_SIZE=%d, rank 0 has WORLD_SIZE=%d", rank, from, theirWorld, world)
	case rank <= 0 || rank >= world:
		why = fmt.Sprintf("a process at %s has RANK=%d, out of 1..%d (WORLD_SIZE=%d)", from, rank, world-1, world)
	}
	if why != "" {
		reply(c, statusBad, world, []byte(why))
		return joined{err: fmt.Errorf("rendezvous: %s: every process must be started with the same WORLD_SIZE and its own RANK", why)}
	}
	if err := reply(c, statusOK, world, payload); err != nil {
		return joined{rank: -1, from: from}
	}
	var ack [1]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil || ack[0] != 1 {
		return joined{rank: -1, from: from} // it went away before reading: it will retry or time out
	}
	return joined{rank: rank, from: from}
}

// reply writes rank 0's answer: the header, the status and world size, then body with its length.
func reply(c net.Conn, status byte, world int, body []byte) error {
	msg := make([]byte, 0, 4+1+1+4+4+len(body))
	msg = append(msg, magic...)
	msg = append(msg, version, status)
	msg = binary.BigEndian.AppendUint32(msg, uint32(world))
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(body)))
	msg = append(msg, body...)
	_, err := c.Write(msg)
	return err
}

// join is the side of a rank other than 0: dial rank 0 until it answers, send the hello, read the payload.
func join(ctx context.Context, e Env, timeout time.Duration) ([]byte, error) {
	var d net.Dialer
	backoff := 20 * time.Millisecond
	var lastErr error
	for {
		c, err := d.DialContext(ctx, "tcp", e.Addr)
		if err == nil {
			return hello(ctx, c, e)
		}
		lastErr = err
		select {
		case <-ctx.Done():
			why := fmt.Sprintf("within %v", timeout)
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				why = "before it was cancelled"
			}
			return nil, fmt.Errorf("rendezvous: rank %d could not reach rank 0 at %s (MASTER_ADDR:MASTER_PORT) %s: %v; "+
				"is rank 0 running, and is the address reachable from this machine?", e.Rank, e.Addr, why, lastErr)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// hello runs one connected rank's exchange with rank 0.
func hello(ctx context.Context, c net.Conn, e Env) ([]byte, error) {
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	msg := make([]byte, 0, 13)
	msg = append(msg, magic...)
	msg = append(msg, version)
	msg = binary.BigEndian.AppendUint32(msg, uint32(e.World))
	msg = binary.BigEndian.AppendUint32(msg, uint32(int32(e.Rank)))
	if _, err := c.Write(msg); err != nil {
		return nil, fmt.Errorf("rendezvous: rank %d: sending to rank 0 at %s: %w", e.Rank, e.Addr, err)
	}
	r := bufio.NewReader(c)
	var head [4 + 1 + 1 + 4 + 4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, fmt.Errorf("rendezvous: rank %d: no answer from rank 0 at %s: %w", e.Rank, e.Addr, err)
	}
	if string(head[:4]) != magic {
		return nil, fmt.Errorf("rendezvous: rank %d: %s answered with something other than t2m's rendezvous; "+
			"is MASTER_PORT used by another program?", e.Rank, e.Addr)
	}
	if head[4] != version {
		return nil, fmt.Errorf("rendezvous: rank %d: rank 0 speaks rendezvous version %d, this process %d: "+
			"run the same t2m on every rank", e.Rank, head[4], version)
	}
	world := int(binary.BigEndian.Uint32(head[6:10]))
	n := binary.BigEndian.Uint32(head[10:14])
	if n > maxPayload {
		return nil, fmt.Errorf("rendezvous: rank %d: rank 0 announced %d bytes, at most %d", e.Rank, n, maxPayload)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("rendezvous: rank %d: reading from rank 0 at %s: %w", e.Rank, e.Addr, err)
	}
	if head[5] != statusOK {
		return nil, fmt.Errorf("rendezvous: rank %d: rank 0 refused this process: %s", e.Rank, body)
	}
	if world != e.World {
		return nil, fmt.Errorf("rendezvous: rank %d: rank 0 has WORLD_SIZE=%d, this process %d", e.Rank, world, e.World)
	}
	if _, err := c.Write([]byte{1}); err != nil {
		return nil, fmt.Errorf("rendezvous: rank %d: acknowledging to rank 0 at %s: %w", e.Rank, e.Addr, err)
	}
	return body, nil
}
