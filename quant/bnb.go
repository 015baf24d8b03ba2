package quant

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/t2m/t2m/safetensors"
)

// Suffixes of the tensors that accompany a bnb-4bit "<linear>.weight" tensor.
const (
	SuffixAbsmax         = ".absmax"
	SuffixQuantMap       = ".quant_map"
	SuffixNestedAbsmax   = ".nested_absmax"
	SuffixNestedQuantMap = ".nested_quant_map"
	SuffixQuantStateNF4  = ".quant_state.bitsandbytes__nf4"
	suffixQuantStateFP4  = ".quant_state.bitsandbytes__fp4"
)

// quantState is the JSON that bitsandbytes packs into the quant_state U8 tensor.
type quantState struct {
	QuantType       string   `json:"quant_type"`
	Blocksize       int      `json:"blocksize"`
	DType           string   `json:"dtype"`
	Shape           []int    `json:"shape"`
	NestedBlocksize int      `json:"nested_blocksize"`
	NestedDType     string   `json:"nested_dtype"`
	NestedOffset    *float64 `json:"nested_offset"`
}

// IsBNB reports whether weight (a full tensor name such as
// "model.layers.0.self_attn.q_proj.weight") is stored bnb-4bit in r.
func IsBNB(r safetensors.Reader, weight string) bool {
	_, err4 := r.Info(weight + SuffixQuantStateNF4)
	_, errF := r.Info(weight + suffixQuantStateFP4)
	return err4 == nil || errF == nil
}

// LoadBNB reads a pre-quantized bnb-4bit NF4 weight and its quantization state from r,
// taking the NF4 and dynamic maps from the file. Every size is checked against the
// shape in the quant state; errors name the tensor.
func LoadBNB(r safetensors.Reader, weight string) (*Weight, error) {
	if _, err := r.Info(weight + suffixQuantStateFP4); err == nil {
		return nil, fmt.Errorf("bnb weight %q: quant_type fp4 is not supported (only nf4)", weight)
	}
	raw, err := rawOf(r, weight+SuffixQuantStateNF4, safetensors.U8)
	if err != nil {
		return nil, err
	}
	var qs quantState
	if err := json.Unmarshal(raw, &qs); err != nil {
		return nil, fmt.Errorf("bnb tensor %q: quant state JSON: %w", weight+SuffixQuantStateNF4, err)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("bnb tensor %q: %s", weight+SuffixQuantStateNF4, fmt.Sprintf(format, a...))
	}
	if qs.QuantType != "nf4" {
		return nil, bad("quant_type %q, want nf4", qs.QuantType)
	}
	if qs.Blocksize <= 0 || qs.Blocksize%2 != 0 {
		return nil, bad("bad blocksize %d", qs.Blocksize)
	}
	n := elements(qs.Shape)
	if len(qs.Shape) == 0 || n <= 0 {
		return nil, bad("bad shape %v", qs.Shape)
	}
	w := &Weight{Shape: qs.Shape, BlockSize: qs.Blocksize, DType: qs.DType}
	nblocks := w.NumBlocks()

	codes, err := rawOf(r, weight, safetensors.U8)
	if err != nil {
		return nil, err
	}
	w.Codes = append([]byte(nil), codes...) // own copy: the reader's mapping may close
	if len(w.Codes) != (n+1)/2 {
		return nil, fmt.Errorf("bnb tensor %q: %d bytes of codes, want %d for shape %v", weight, len(w.Codes), (n+1)/2, qs.Shape)
	}
	if err := loadFloats(r, weight+SuffixQuantMap, w.QuantMap[:]); err != nil {
		return nil, err
	}
	if _, err := r.Info(weight + SuffixNestedAbsmax); err != nil { // plain float32 absmax
		w.Absmax = make([]float32, nblocks)
		return w, loadFloats(r, weight+SuffixAbsmax, w.Absmax)
	}
	w.Nested = true
	if qs.NestedOffset == nil || qs.NestedBlocksize <= 0 {
		return nil, bad("nested statistics without nested_offset or nested_blocksize")
	}
	w.Offset = float32(*qs.NestedOffset)
	w.NestedBlockSize = qs.NestedBlocksize
	qabs, err := rawOf(r, weight+SuffixAbsmax, safetensors.U8)
	if err != nil {
		return nil, err
	}
	w.QAbsmax = append([]byte(nil), qabs...)
	if len(w.QAbsmax) != nblocks {
		return nil, fmt.Errorf("bnb tensor %q: %d absmax codes, want %d blocks", weight+SuffixAbsmax, len(w.QAbsmax), nblocks)
	}
	w.NestedAbsmax = make([]float32, (nblocks+w.NestedBlockSize-1)/w.NestedBlockSize)
	if err := loadFloats(r, weight+SuffixNestedAbsmax, w.NestedAbsmax); err != nil {
		return nil, err
	}
	if err := loadFloats(r, weight+SuffixNestedQuantMap, w.NestedMap[:]); err != nil {
		return nil, err
	}
	return w, nil
}

// rawOf returns a tensor's bytes after checking its dtype.
func rawOf(r safetensors.Reader, name string, dt safetensors.DType) ([]byte, error) {
	info, err := r.Info(name)
	if err != nil {
		return nil, fmt.Errorf("bnb weight: %w", err)
	}
	if info.DType != dt {
		return nil, fmt.Errorf("bnb tensor %q: dtype %s, want %s", name, info.DType, dt)
	}
	return r.Raw(name)
}

// loadFloats reads a float tensor of exactly len(dst) elements into dst.
func loadFloats(r safetensors.Reader, name string, dst []float32) error {
	v, err := r.Float32(name)
	if err != nil {
		return fmt.Errorf("bnb weight: %w", err)
	}
	if len(v) != len(dst) {
		return fmt.Errorf("bnb tensor %q: %d values, want %d", name, len(v), len(dst))
	}
	copy(dst, v)
	return nil
}

// Tensors gives the weight in bitsandbytes' safetensors layout under the name weight
// (e.g. "model.layers.0.self_attn.q_proj.weight"): codes U8 [(n+1)/2, 1], absmax,
// quant_map, nested_absmax, nested_quant_map and the packed quant state JSON.
func (w *Weight) Tensors(weight string) []safetensors.Tensor {
	n := w.NumElements()
	ts := []safetensors.Tensor{
		safetensors.U8Tensor(weight, []int{(n + 1) / 2, 1}, w.Codes),
		safetensors.F32Tensor(weight+SuffixQuantMap, []int{16}, w.QuantMap[:]),
	}
	// json.dumps of bitsandbytes' QuantState.as_dict, keys in its order.
	shape := make([]string, len(w.Shape))
	for i, d := range w.Shape {
		shape[i] = strconv.Itoa(d)
	}
	js := fmt.Sprintf(`{"quant_type": "nf4", "blocksize": %d, "dtype": %q, "shape": [%s]`, w.BlockSize, w.DType, strings.Join(shape, ", "))
	if w.Nested {
		ts = append(ts,
			safetensors.U8Tensor(weight+SuffixAbsmax, []int{len(w.QAbsmax)}, w.QAbsmax),
			safetensors.F32Tensor(weight+SuffixNestedAbsmax, []int{len(w.NestedAbsmax)}, w.NestedAbsmax),
			safetensors.F32Tensor(weight+SuffixNestedQuantMap, []int{256}, w.NestedMap[:]))
		js += fmt.Sprintf(`, "nested_blocksize": %d, "nested_dtype": "float32", "nested_offset": %s`, w.NestedBlockSize, pyFloat(w.Offset))
	} else {
		ts = append(ts, safetensors.F32Tensor(weight+SuffixAbsmax, []int{len(w.Absmax)}, w.Absmax))
	}
	js += "}"
	return append(ts, safetensors.U8Tensor(weight+SuffixQuantStateNF4, []int{len(js)}, []byte(js)))
}

// pyFloat formats a float32 widened to float64 as Python's repr does for the usual
// magnitudes (shortest round-trip digits, ".0" on integral values).
func pyFloat(f float32) string {
	s := strconv.FormatFloat(float64(f), 'g', -1, 64)
	if !strings.ContainsAny(s, ".eIN") {
		s += ".0"
	}
	return s
}
