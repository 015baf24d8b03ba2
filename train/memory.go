package train

// MemoryReport is a device backend's memory in bytes: what its plan reserves, by use, and what the whole GPU
// has in use when it was measured (what nvidia-smi shows; other processes on the GPU included).
type MemoryReport struct {
	LoRABytes    int64 `json:"lora_bytes"`    // LoRA parameters, gradients and optimizer state
	WeightsBytes int64 `json:"weights_bytes"` // frozen weights and their scratch buffers
	// WeightCacheBytes: of WeightsBytes, the dequantized copies kept of CachedWeights quantized weights
	// (WeightCacher).
	WeightCacheBytes int64 `json:"weight_cache_bytes,omitempty"`
	CachedWeights    int   `json:"cached_weights,omitempty"`
	ActivationBytes  int64 `json:"activation_bytes"`  // the activations' memory plan
	ArenaBytes       int64 `json:"arena_bytes"`       // what the backend's arena holds on the device
	DeviceUsedBytes  int64 `json:"device_used_bytes"` // the GPU's used memory (total − free)
}

// MemoryReporter is a Backend that can report its device memory (the CUDA backend, after Reserve).
type MemoryReporter interface {
	Memory() (MemoryReport, error)
}
