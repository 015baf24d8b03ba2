//go:build t2mcuda

package gpu

import (
	"encoding/binary"
	"math"
	"math/rand"
	"reflect"
	"testing"

	"github.com/t2m/t2m/gpu/cuda/cudatest"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/safetensors"
)

// TestQuantizerMatchesHost: the load-time GPU quantizer gives the same quant.Weight as the host's
// model.QuantizeNF4, field for field, for bf16 and f32 checkpoints of a few shapes (one not a multiple of a
// nested block, one odd-sized, which goes to the host); and a whole model loaded through it equals the
// host-quantized one.
func TestQuantizerMatchesHost(t *testing.T) {
	cudatest.Device(t) // skips without a GPU
	q, closeQ, err := NewQuantizer()
	if err != nil {
		t.Fatal(err)
	}
	defer closeQ()
	rng := rand.New(rand.NewSource(3))
	for _, c := range []struct {
		dt         safetensors.DType
		rows, cols int
	}{{safetensors.BF16, 64, 96}, {safetensors.BF16, 896, 512}, {safetensors.F32, 130, 64}, {safetensors.BF16, 3, 5}} {
		n := c.rows * c.cols
		var raw []byte
		switch c.dt {
		case safetensors.BF16:
			raw = make([]byte, 2*n)
			for i := range n {
				binary.LittleEndian.PutUint16(raw[2*i:], uint16(math.Float32bits(float32(rng.NormFloat64()*0.02))>>16))
			}
		default:
			raw = make([]byte, 4*n)
			for i := range n {
				binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(float32(rng.NormFloat64())))
			}
		}
		shape := []int{c.rows, c.cols}
		got, err := q("w", c.dt, raw, shape)
		if err != nil {
			t.Fatalf("%s %v: %v", c.dt, shape, err)
		}
		want, err := model.QuantizeNF4("w", c.dt, raw, shape)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s %v: the GPU quantizer's weight differs from the host's", c.dt, shape)
		}
	}
	cfg := model.Config{HiddenSize: 128, IntermediateSize: 384, NumLayers: 2, NumHeads: 4, NumKVHeads: 2, HeadDim: 32,
		VocabSize: 97, RMSNormEps: 1e-6, RopeTheta: 10000, MaxPositionEmbeddings: 256, Dtype: "float32"}
	viaGPU, err := model.RandomWeights(cfg, 5, model.LoadOptions{Quantize: q})
	if err != nil {
		t.Fatal(err)
	}
	viaHost, err := model.RandomWeights(cfg, 5, model.LoadOptions{Quantize: model.QuantizeNF4})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(viaGPU, viaHost) {
		t.Errorf("a model quantized on the GPU at load differs from the host-quantized one")
	}
}
