package cuda

// Align is the alignment of every arena buffer: enough for 16-byte vector loads and cuBLAS's wishes.
const Align = 256

// AlignUp rounds n up to a multiple of Align.
func AlignUp(n int64) int64 { return (n + Align - 1) / Align * Align }
