//go:build t2mcuda

package machine

import (
	"fmt"

	"github.com/t2m/t2m/gpu/ops"
	"github.com/t2m/t2m/quant"
)

// cacheReserve is the device memory a weight cache leaves free beyond the machine's weights and activation
// plan: the driver's and cuBLAS's own allocations, and the arena's mapping granularity.
const cacheReserve = 1 << 30

// placeWeights uploads the NF4 weights weight() recorded, after the activations are planned (planBytes,
// not placed yet), in the order the graph reaches them. Up to budget bytes of them, smallest first, are
// kept as bf16 copies instead of NF4 (a weight's codes are uploaded to the top of the arena, dequantized
// into its copy and dropped), so that dense returns them without dequantizing: the frozen weights never
// change and a copy is what DequantNF4 writes at every use, so results are bit for bit those of an
// uncached machine. The smallest come first because per byte they save the most launches (a 7B layer's k
// and v, then q and o, then the MLP's). The cache never takes memory the weights, the plan and
// cacheReserve need: it shrinks to what the device has free beyond them.
func (m *Machine) placeWeights(budget, planBytes int64) error {
	n := len(m.pending)
	hosts, dense, packed := make([]*ops.NF4Host, n), make([]int64, n), make([]int64, n)
	var nf4Total, most int64 // all NF4 bytes; the dequantization scratch if nothing is cached
	for k, f := range m.pending {
		q, ok := f.Quant.(*quant.Weight)
		if !ok {
			return fmt.Errorf("gpu: machine: %s is quantized as %T, not NF4 (quant.Weight)", f.Name, f.Quant)
		}
		h, err := ops.NF4HostFromQuant(q)
		if err != nil {
			return fmt.Errorf("gpu: machine: %s: %w", f.Name, err)
		}
		hosts[k], dense[k] = h, 2*int64(f.Out)*int64(f.In)
		packed[k] = ops.NF4ArenaBytes(h.Rows, h.Cols, h.BlockSize, h.BlockSize2)
		nf4Total += packed[k]
		most = max(most, dense[k])
	}
	cached := make([]bool, n)
	if budget > 0 {
		free, _, err := m.d.MemInfo()
		if err != nil {
			return fmt.Errorf("gpu: machine: weight cache: %w", err)
		}
		cached = chooseCache(dense, packed, budget, free-planBytes-nf4Total-most-cacheReserve)
	}
	var scratch int64 // the largest weight left NF4
	for k, f := range m.pending {
		w := m.lin[f]
		if cached[k] {
			if err := m.cacheWeight(w, hosts[k], f.Name, dense[k]); err != nil {
				return err
			}
			continue
		}
		var err error
		if w.nf4, err = ops.UploadNF4(m.d, m.ar, hosts[k], f.Name); err != nil {
			return err
		}
		scratch = max(scratch, dense[k])
	}
	m.pending = nil
	if scratch > 0 {
		var err error
		if m.scratch, err = m.alloc(scratch, "NF4 dequant scratch"); err != nil {
			return err
		}
	}
	return nil
}

// cacheWeight makes w the bf16 copy (bytes long) of NF4 weight h: h's codes go to the top of the arena, are
// dequantized into w.dense and are dropped.
func (m *Machine) cacheWeight(w *machineWeight, h *ops.NF4Host, name string, bytes int64) error {
	var err error
	if w.dense, err = m.alloc(bytes, name+" (bf16 weight cache)"); err != nil {
		return err
	}
	mark := m.ar.Mark()
	q, err := ops.UploadNF4(m.d, m.ar, h, name)
	if err != nil {
		return err
	}
	if err := ops.DequantNF4(m.d, q, w.dense); err != nil {
		return fmt.Errorf("gpu: machine: weight cache: %w", err)
	}
	if err := m.d.Sync(); err != nil { // the next upload reuses the codes' memory
		return err
	}
	m.ar.Release(mark)
	m.cacheBytes += bytes
	m.cached++
	return nil
}

// WeightCache is what placeWeights kept as bf16 copies: their bytes and how many weights they are.
func (m *Machine) WeightCache() (bytes int64, weights int) { return m.cacheBytes, m.cached }
