package train

import (
	"fmt"
	"sort"
	"sync"
)

// Collective joins the ranks of a data-parallel run: every rank runs the same Run on its own device with
// its own replica of the parameters, and the ranks meet once per update to sum their gradients. On GPUs it
// is NCCL (package gpu/nccl, one process per GPU); NewLocalGroup is an in-process one for the CPU and tests.
type Collective interface {
	// Rank is this replica's index in [0, Size).
	Rank() int
	// Size is the number of ranks (the world size).
	Size() int
	// AllReduceSum replaces each buffer, on every rank, with the elementwise sum of that buffer over all
	// ranks. Every rank calls it with the same number of buffers of the same lengths, in the same order;
	// it returns when this rank's buffers hold the sums, or with an error (a rank failed or timed out).
	AllReduceSum(bufs [][]float32) error
	// Close leaves the group.
	Close() error
}

// NewLocalGroup returns size Collectives that reduce among themselves in memory, one per rank, to be
// used from one goroutine each. The sums are taken in rank order, so every rank gets the same bits.
func NewLocalGroup(size int) []Collective {
	g := &localGroup{size: size, bufs: make([][][]float32, size)}
	g.cond = sync.NewCond(&g.mu)
	out := make([]Collective, size)
	for r := range size {
		out[r] = &localRank{g: g, rank: r}
	}
	return out
}

type localGroup struct {
	size   int
	mu     sync.Mutex
	cond   *sync.Cond
	bufs   [][][]float32 // each rank's buffers of the current round
	joined int           // ranks that have handed in their buffers this round
	done   int           // ranks that have read the sums this round
	round  uint64
	closed bool
	sums   [][]float32
}

type localRank struct {
	g    *localGroup
	rank int
}

// Rank is this rank's index.
func (l *localRank) Rank() int { return l.rank }

// Size is the group's number of ranks.
func (l *localRank) Size() int { return l.g.size }

// Close marks the group closed: a rank waiting in AllReduceSum then fails instead of waiting forever
// (what a real collective does when a peer is gone).
func (l *localRank) Close() error {
	g := l.g
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	g.cond.Broadcast()
	return nil
}

// AllReduceSum waits until every rank has handed in its buffers, then gives each rank the sums (added in
// rank order); it fails once the group is closed.
func (l *localRank) AllReduceSum(bufs [][]float32) error {
	g := l.g
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.done > 0 && !g.closed { // the previous round is still being read
		g.cond.Wait()
	}
	if g.closed {
		return fmt.Errorf("all-reduce on rank %d: the group is closed (another rank stopped)", l.rank)
	}
	round := g.round
	g.bufs[l.rank] = bufs
	g.joined++
	if g.joined == g.size {
		if err := g.sum(); err != nil {
			g.closed = true
			g.cond.Broadcast()
			return err
		}
		g.joined, g.done = 0, g.size
		g.round++
		g.cond.Broadcast()
	}
	for g.round == round && !g.closed {
		g.cond.Wait()
	}
	if g.round == round {
		return fmt.Errorf("all-reduce on rank %d: the group is closed (another rank stopped)", l.rank)
	}
	for i, b := range bufs {
		copy(b, g.sums[i])
	}
	g.done--
	if g.done == 0 {
		g.cond.Broadcast()
	}
	return nil
}

// sum adds the ranks' buffers in rank order into g.sums; called with g.mu held once all ranks joined.
func (g *localGroup) sum() error {
	first := g.bufs[0]
	g.sums = make([][]float32, len(first))
	for i, b := range first {
		g.sums[i] = append([]float32(nil), b...)
	}
	for r := 1; r < g.size; r++ {
		if len(g.bufs[r]) != len(first) {
			return fmt.Errorf("all-reduce: rank %d passed %d buffers, rank 0 %d", r, len(g.bufs[r]), len(first))
		}
		for i, b := range g.bufs[r] {
			if len(b) != len(g.sums[i]) {
				return fmt.Errorf("all-reduce: buffer %d has %d values on rank %d, %d on rank 0", i, len(b), r, len(g.sums[i]))
			}
			for j, x := range b {
				g.sums[i][j] += x
			}
		}
	}
	return nil
}

// shareOut gives each micro-batch of a window to a rank (owner[k]), balancing the ranks' padded tokens:
// longest first, each to the rank with the fewest so far (ties: the lower rank), so that no rank waits long
// for the others at the all-reduce. Every rank computes the same assignment; a micro-batch's dropout is
// seeded by its index k wherever it runs, so the update is the same whatever the assignment.
func shareOut(win []microBatch, world int) []int {
	owner := make([]int, len(win))
	if world == 1 {
		return owner
	}
	order := make([]int, len(win))
	for k := range order {
		order[k] = k
	}
	sort.SliceStable(order, func(a, b int) bool {
		return win[order[a]].rows*win[order[a]].seq > win[order[b]].rows*win[order[b]].seq
	})
	load := make([]int, world)
	for _, k := range order {
		r := 0
		for i := range load {
			if load[i] < load[r] {
				r = i
			}
		}
		owner[k] = r
		load[r] += win[k].rows * win[k].seq
	}
	return owner
}

// RankOf is c's rank and number of ranks: 0 and 1 for no group (nil) or a group of one.
func RankOf(c Collective) (rank, world int) {
	if c == nil || c.Size() <= 1 {
		return 0, 1
	}
	return c.Rank(), c.Size()
}

// rank is this Run's rank and the number of ranks (RankOf its Group).
func (r *Run) rank() (rank, world int) { return RankOf(r.Group) }

// saveAdapter saves the adapter on rank 0 (the other ranks hold the same values and write nothing).
func (r *Run) saveAdapter(dir string) error {
	if rank, _ := r.rank(); rank != 0 {
		return nil
	}
	if err := r.syncHost(); err != nil {
		return err
	}
	return r.Adapter.Save(dir)
}

// syncHost brings Params and the optimizer state on the host up to date (Updater.Sync) before they are
// read; nothing to do outside Train or with the optimizer on the host.
func (r *Run) syncHost() error {
	if r.upd == nil {
		return nil
	}
	return r.upd.Sync()
}
