package tokenizer

import (
	"sync"
)

// merge is one BPE merge rule: the pair it applies to merges into id, and lower ranks apply first.
type merge struct {
	rank int32
	id   int32
}

// pairKey packs the ids of a symbol pair into a map key.
func pairKey(left, right int) uint64 {
	return uint64(uint32(left))<<32 | uint64(uint32(right))
}

// cacheLimit bounds the pre-token cache; past it new pre-tokens are encoded but not remembered.
const cacheLimit = 1 << 17

// cacheMaxKey is the longest pre-token (in bytes) that is cached; long ones are rare and would pin memory.
const cacheMaxKey = 256

// cache maps pre-tokens to their BPE ids. It is safe for concurrent use.
type cache struct {
	mu    sync.RWMutex
	limit int
	m     map[string][]int
}

func newCache(limit int) *cache {
	return &cache{limit: limit, m: make(map[string][]int)}
}

func (c *cache) get(key string) ([]int, bool) {
	c.mu.RLock()
	ids, ok := c.m[key]
	c.mu.RUnlock()
	return ids, ok
}

func (c *cache) put(key string, ids []int) {
	if len(key) > cacheMaxKey {
		return
	}
	c.mu.Lock()
	if len(c.m) < c.limit {
		c.m[string([]byte(key))] = ids // copy: key may point into a large text
	}
	c.mu.Unlock()
}

// encodeWord appends the BPE ids of one pre-token.
func (t *Tokenizer) encodeWord(word string, ids []int) []int {
	if cached, ok := t.cache.get(word); ok {
		return append(ids, cached...)
	}
	out := t.bpe(word)
	t.cache.put(word, out)
	return append(ids, out...)
}

// bpe splits a pre-token into symbols (bytes for byte-level, characters otherwise) and merges them.
func (t *Tokenizer) bpe(word string) []int {
	if t.ignoreMerges {
		if id, ok := t.vocab[t.symbolText(word)]; ok {
			return []int{id}
		}
	}
	syms := t.initialSymbols(word)
	return t.mergeSymbols(syms)
}

// symbolText is word as spelled in the vocabulary (byte-level symbols when the pre-tokenizer is ByteLevel).
func (t *Tokenizer) symbolText(word string) string {
	if !t.byteLevel {
		return word
	}
	var sb []rune
	for i := 0; i < len(word); i++ {
		sb = append(sb, byteToChar[word[i]])
	}
	return string(sb)
}

// initialSymbols maps each byte (byte-level) or character of word to its vocabulary id. A symbol missing
// from the vocabulary becomes the unk id (fused with a preceding unk when fuse_unk is set) or, without an
// unk token, is dropped, as in HF.
func (t *Tokenizer) initialSymbols(word string) []int {
	syms := make([]int, 0, len(word))
	lastUnk := false
	add := func(id int, ok bool) {
		switch {
		case ok:
			syms = append(syms, id)
			lastUnk = false
		case t.unkID < 0:
		case t.fuseUnk && lastUnk:
		default:
			syms = append(syms, t.unkID)
			lastUnk = true
		}
	}
	if t.byteLevel {
		for i := 0; i < len(word); i++ {
			id := t.byteIDs[word[i]]
			add(id, id >= 0)
		}
		return syms
	}
	for _, r := range word {
		id, ok := t.vocab[string(r)]
		add(id, ok)
	}
	return syms
}

// candidate is a possible merge of the symbol at pos with the next live symbol.
type candidate struct {
	rank int32
	id   int32 // the merged id the pair had when the candidate was made
	pos  int32
}

func (a candidate) less(b candidate) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos)
}

// mergeSymbols applies merges as HF's BPE does: repeatedly the pair with the lowest rank, the leftmost
// among equal ranks, using a priority queue and skipping candidates that earlier merges made stale.
func (t *Tokenizer) mergeSymbols(syms []int) []int {
	n := len(syms)
	if n < 2 {
		return syms
	}
	next := make([]int32, n) // index of the next live symbol, -1 at the end
	prev := make([]int32, n) // index of the previous live symbol, -1 at the start
	dead := make([]bool, n)  // merged into the symbol on its left
	for i := range n {
		next[i], prev[i] = int32(i+1), int32(i-1)
	}
	next[n-1] = -1
	var q queue
	for i := 0; i+1 < n; i++ {
		if m, ok := t.merges[pairKey(syms[i], syms[i+1])]; ok {
			q.push(candidate{rank: m.rank, id: m.id, pos: int32(i)})
		}
	}
	for len(q) > 0 {
		c := q.pop()
		pos := c.pos
		if dead[pos] || next[pos] < 0 {
			continue
		}
		right := next[pos]
		if m, ok := t.merges[pairKey(syms[pos], syms[right])]; !ok || m.id != c.id {
			continue // the pair changed since this candidate was queued
		}
		syms[pos] = int(c.id)
		dead[right] = true
		next[pos] = next[right]
		if next[pos] >= 0 {
			prev[next[pos]] = pos
		}
		if p := prev[pos]; p >= 0 {
			if m, ok := t.merges[pairKey(syms[p], syms[pos])]; ok {
				q.push(candidate{rank: m.rank, id: m.id, pos: p})
			}
		}
		if nx := next[pos]; nx >= 0 {
			if m, ok := t.merges[pairKey(syms[pos], syms[nx])]; ok {
				q.push(candidate{rank: m.rank, id: m.id, pos: pos})
			}
		}
	}
	out := make([]int, 0, n)
	for i := 0; i >= 0; i = int(next[i]) {
		out = append(out, syms[i])
	}
	return out
}

// queue is a binary min-heap of merge candidates.
type queue []candidate

func (q *queue) push(c candidate) {
	h := append(*q, c)
	i := len(h) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if !h[i].less(h[parent]) {
			break
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
	*q = h
}

func (q *queue) pop() candidate {
	h := *q
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	i := 0
	for {
		l, r, small := 2*i+1, 2*i+2, i
		if l < len(h) && h[l].less(h[small]) {
			small = l
		}
		if r < len(h) && h[r].less(h[small]) {
			small = r
		}
		if small == i {
			break
		}
		h[i], h[small] = h[small], h[i]
		i = small
	}
	*q = h
	return top
}
