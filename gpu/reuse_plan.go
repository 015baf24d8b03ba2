package gpu

// reusePlan says how one prompt of a prefill is computed: from scratch (donor −1), or after its first keep
// tokens, whose keys and values slot donor's cache holds once this prefill's whole prompts are computed (the
// prompt's own slot, or another one they are copied from).
type reusePlan struct {
	donor int32
	keep  int
}

// planReuse chooses, for each prompt (going to slot slotOf[i]), the cache with the longest prefix in common
// with it: cached[u] lists the tokens whose keys and values slot u holds at positions 0, 1, ... Donors are
// the slots this prefill does not write, the prompt's own slot, and the slots of earlier prompts of this
// prefill that are computed whole ("leaders": Prefill computes them before any prompt that reuses them, so
// their slots then hold the whole prompt). Prompts given next to one another that share a prefix (the same
// schema) thus compute it once. At least the last token is always computed (its logits are the prefill's
// output). A common prefix shorter than minKeep is not worth a copy and a forward of its own: donor −1, and
// the prompt becomes a leader. Among equal prefixes the prompt's own slot wins (nothing to copy), then the
// first candidate (cached slots in slot order, then leaders in prompt order).
func planReuse(cached [][]int32, slotOf []int32, prompts [][]int32, minKeep int) []reusePlan {
	target := make(map[int32]bool, len(slotOf))
	for _, s := range slotOf {
		target[s] = true
	}
	plans := make([]reusePlan, len(prompts))
	for i, p := range prompts {
		best := reusePlan{donor: -1}
		consider := func(u int32, held []int32) {
			n := min(commonPrefix(held, p), len(p)-1)
			if n > best.keep || (n == best.keep && n > 0 && u == slotOf[i]) {
				best = reusePlan{donor: u, keep: n}
			}
		}
		for u, held := range cached {
			if !target[int32(u)] || int32(u) == slotOf[i] {
				consider(int32(u), held)
			}
		}
		for j := range i {
			if plans[j].donor < 0 {
				consider(slotOf[j], prompts[j])
			}
		}
		if best.keep < max(minKeep, 1) {
			best = reusePlan{donor: -1}
		}
		plans[i] = best
	}
	return plans
}

// commonPrefix is the length of the longest common prefix of a and b.
func commonPrefix(a, b []int32) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}
