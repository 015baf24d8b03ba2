package model

// NumParams is the model's parameter count as far as size matters: per layer the seven projections
// (q [QDim, H], k and v [KVDim, H], o [H, QDim], gate and up [I, H], down [H, I]), plus the embedding and
// lm_head [V, H] each (counted twice even when tied; norms and biases left out). 7.6e9 for
// Qwen2.5-Coder-7B. It is what decides whether a model is too large to run on the CPU.
func (c Config) NumParams() int64 {
	h, i := int64(c.HiddenSize), int64(c.IntermediateSize)
	q, kv := int64(c.QDim()), int64(c.KVDim())
	layer := h*q + 2*h*kv + q*h + 3*h*i
	return int64(c.NumLayers)*layer + 2*int64(c.VocabSize)*h
}
