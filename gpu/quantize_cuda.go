//go:build t2mcuda

package gpu

import (
	"fmt"

	"github.com/t2m/t2m/gpu/cuda"
	"github.com/t2m/t2m/gpu/ops"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/quant"
	"github.com/t2m/t2m/safetensors"
)

// quantizerArena is the address space the load-time quantizer reserves: a projection's checkpoint bytes
// and its NF4 outputs (the 7B's largest, 18944 × 3584 in bf16, take about 180 MB; mapped as used).
const quantizerArena = 4 << 30

// NewQuantizer returns a model.QuantizeFunc that quantizes each projection on this process's GPU as the
// checkpoint is read (upload the bytes, ops.QuantizeNF4, download the NF4 codes and statistics), giving
// byte for byte what model.QuantizeNF4 computes on the host, in a fraction of the host's time; close frees
// the GPU memory it used. Weights with an odd number of elements (no real projection) go to the host
// quantizer.
func NewQuantizer() (q model.QuantizeFunc, close func() error, err error) {
	d, err := cuda.Open(ordinal())
	if err != nil {
		return nil, nil, err
	}
	a, err := cuda.NewArena(d, quantizerArena)
	if err != nil {
		_ = d.Close()
		return nil, nil, fmt.Errorf("gpu: quantizer: %w", err)
	}
	q = func(name string, dt safetensors.DType, raw []byte, shape []int) (model.Quantized, error) {
		if len(shape) != 2 || shape[0]*shape[1]%2 != 0 {
			return model.QuantizeNF4(name, dt, raw, shape)
		}
		if err := d.Bind(); err != nil {
			return nil, err
		}
		w, err := quantizeOnDevice(d, a, name, dt, raw, shape[0], shape[1])
		if err != nil {
			return nil, fmt.Errorf("quantize %s on the GPU: %w", name, err)
		}
		return w, nil
	}
	close = func() error {
		err := a.Free()
		if cerr := d.Close(); err == nil {
			err = cerr
		}
		return err
	}
	return q, close, nil
}

// quantizeOnDevice quantizes one [rows, cols] weight of dtype dt (raw: its checkpoint bytes) with the
// arena's memory, released again before it returns.
func quantizeOnDevice(d *cuda.Device, a *cuda.Arena, name string, dt safetensors.DType, raw []byte, rows, cols int) (*quant.Weight, error) {
	dtName, err := quant.DTypeName(dt)
	if err != nil {
		return nil, err
	}
	size, err := dt.Size()
	if err != nil {
		return nil, err
	}
	n := rows * cols
	if len(raw) != n*size {
		return nil, fmt.Errorf("%s [%d, %d] needs %d bytes, got %d", dt, rows, cols, n*size, len(raw))
	}
	mark := a.Mark()
	defer a.Release(mark)
	x, err := a.Alloc(int64(len(raw)), "checkpoint bytes of "+name) // [n] dt
	if err != nil {
		return nil, err
	}
	if err := cuda.Upload(d, x, raw); err != nil {
		return nil, err
	}
	dw, err := ops.AllocNF4(a, rows, cols, quant.BlockSize, quant.NestedBlockSize, name)
	if err != nil {
		return nil, err
	}
	work, err := a.Alloc(ops.NF4QuantizeWorkBytes(int64(n)), "quantizer work of "+name)
	if err != nil {
		return nil, err
	}
	if err := ops.QuantizeNF4(d, x, dt, dw, work, name); err != nil {
		return nil, err
	}
	nb := (n + quant.BlockSize - 1) / quant.BlockSize
	w := &quant.Weight{Shape: []int{rows, cols}, Codes: make([]byte, n/2), QuantMap: quant.NF4,
		BlockSize: quant.BlockSize, DType: dtName, Nested: true, QAbsmax: make([]byte, nb),
		NestedAbsmax: make([]float32, (nb+quant.NestedBlockSize-1)/quant.NestedBlockSize),
		NestedMap:    quant.DynamicMap, NestedBlockSize: quant.NestedBlockSize, Offset: dw.Offset}
	for _, c := range []error{cuda.Download(d, w.Codes, dw.Codes), cuda.Download(d, w.QAbsmax, dw.Absmax),
		cuda.Download(d, w.NestedAbsmax, dw.Absmax2)} {
		if c != nil {
			return nil, c
		}
	}
	return w, nil
}
