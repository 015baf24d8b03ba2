package machine

import "slices"

// chooseCache picks which NF4 weights a machine keeps as bf16 copies (Options.WeightCacheBytes). dense[k] is
// weight k's size as bf16 and packed[k] its size as NF4 (what a copy replaces), both in bytes, in the order
// the graph reaches the weights. Weights are taken smallest first (per byte they save the most launches; ties
// in graph order) while their bf16 bytes fit in budget and what each adds over its NF4 (dense − packed) fits
// in spare, the device memory left once the NF4 weights, the activations and a reserve are counted; the first
// weight that does not fit ends the choice, since none after it is smaller.
func chooseCache(dense, packed []int64, budget, spare int64) []bool {
	cached := make([]bool, len(dense))
	order := make([]int, len(dense))
	for k := range order {
		order[k] = k
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case dense[a] < dense[b]:
			return -1
		case dense[a] > dense[b]:
			return 1
		}
		return 0
	})
	for _, k := range order {
		extra := dense[k] - packed[k]
		if dense[k] > budget || extra > spare {
			break
		}
		cached[k] = true
		budget -= dense[k]
		spare -= extra
	}
	return cached
}
