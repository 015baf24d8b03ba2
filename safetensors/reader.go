package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// MaxHeaderSize bounds the JSON header, as the Python/Rust library does (100 MB).
const MaxHeaderSize = 100_000_000

// Reader is what both a single File and a sharded Dir offer.
type Reader interface {
	// Names lists the tensors, sorted.
	Names() []string
	// Info gives a tensor's dtype, shape and offsets.
	Info(name string) (TensorInfo, error)
	// Raw gives a tensor's bytes, valid until Close; do not modify them.
	Raw(name string) ([]byte, error)
	// Float32 converts an F32, BF16 or F16 tensor to a new []float32.
	Float32(name string) ([]float32, error)
	// Close releases the mappings.
	Close() error
}

// File is one memory-mapped safetensors file. Raw slices point into the mapping and
// are valid until Close.
type File struct {
	path     string
	data     []byte // the whole file, mapped read-only
	body     []byte // the data section
	unmap    func() error
	infos    map[string]TensorInfo
	names    []string
	metadata map[string]string
}

var _ Reader = (*File)(nil)

// Open maps path read-only and validates its header: length bounds, JSON, known
// dtypes, shape × dtype size = byte length, offsets inside the file, tensors tiling
// the data section with no gap or overlap.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	size := st.Size()
	if size < 8 {
		return nil, fmt.Errorf("safetensors: %s: %d bytes, too short for the 8-byte header length (truncated?)", path, size)
	}
	data, unmap, err := mapFile(f, size)
	if err != nil {
		return nil, fmt.Errorf("safetensors: map %s: %w", path, err)
	}
	sf := &File{path: path, data: data, unmap: unmap}
	if err := sf.parse(); err != nil {
		unmap()
		return nil, err
	}
	return sf, nil
}

// Parse validates an in-memory safetensors image; name is used in errors. The
// returned File refers to data (no copy); its Close does nothing.
func Parse(name string, data []byte) (*File, error) {
	sf := &File{path: name, data: data, unmap: func() error { return nil }}
	if len(data) < 8 {
		return nil, fmt.Errorf("safetensors: %s: %d bytes, too short for the 8-byte header length (truncated?)", name, len(data))
	}
	if err := sf.parse(); err != nil {
		return nil, err
	}
	return sf, nil
}

type headerEntry struct {
	DType       DType   `json:"dtype"`
	Shape       []int   `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

func (f *File) parse() error {
	n := binary.LittleEndian.Uint64(f.data[:8])
	if n > MaxHeaderSize {
		return fmt.Errorf("safetensors: %s: header length %d exceeds the %d-byte limit (not a safetensors file?)", f.path, n, MaxHeaderSize)
	}
	if 8+n > uint64(len(f.data)) {
		return fmt.Errorf("safetensors: %s: header length %d but the file has only %d bytes after it (truncated?)", f.path, n, len(f.data)-8)
	}
	hdr := f.data[8 : 8+n]
	if len(bytes.TrimSpace(hdr)) == 0 || hdr[0] != '{' || !utf8.Valid(hdr) {
		return fmt.Errorf("safetensors: %s: header is not a UTF-8 JSON object", f.path)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &raw); err != nil {
		return fmt.Errorf("safetensors: %s: header JSON: %w", f.path, err)
	}
	f.body = f.data[8+n:]
	f.infos = make(map[string]TensorInfo, len(raw))
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &f.metadata); err != nil {
				return fmt.Errorf("safetensors: %s: __metadata__ must map strings to strings: %w", f.path, err)
			}
			continue
		}
		info, err := parseEntry(msg)
		if err != nil {
			return fmt.Errorf("safetensors: %s: tensor %q: %w", f.path, name, err)
		}
		if info.End > int64(len(f.body)) {
			return fmt.Errorf("safetensors: %s: truncated: tensor %q needs data bytes [%d, %d) but the data section holds %d",
				f.path, name, info.Begin, info.End, len(f.body))
		}
		f.infos[name] = info
		f.names = append(f.names, name)
	}
	sort.Strings(f.names)
	return f.checkTiling()
}

func parseEntry(msg json.RawMessage) (TensorInfo, error) {
	var e headerEntry
	dec := json.NewDecoder(bytes.NewReader(msg))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return TensorInfo{}, fmt.Errorf("bad header entry: %w", err)
	}
	size, err := e.DType.Size()
	if err != nil {
		return TensorInfo{}, err
	}
	if e.Shape == nil {
		return TensorInfo{}, fmt.Errorf("missing shape")
	}
	if len(e.DataOffsets) != 2 {
		return TensorInfo{}, fmt.Errorf("data_offsets must be [begin, end], got %v", e.DataOffsets)
	}
	begin, end := e.DataOffsets[0], e.DataOffsets[1]
	if begin < 0 || end < begin {
		return TensorInfo{}, fmt.Errorf("bad data_offsets [%d, %d]", begin, end)
	}
	elems := int64(1)
	for _, d := range e.Shape {
		if d < 0 {
			return TensorInfo{}, fmt.Errorf("negative dimension in shape %v", e.Shape)
		}
		if d > 0 && elems > (1<<62)/int64(d) {
			return TensorInfo{}, fmt.Errorf("shape %v overflows", e.Shape)
		}
		elems *= int64(d)
	}
	if want := elems * int64(size); end-begin != want {
		return TensorInfo{}, fmt.Errorf("%s %v needs %d bytes but data_offsets [%d, %d] span %d",
			e.DType, e.Shape, want, begin, end, end-begin)
	}
	return TensorInfo{DType: e.DType, Shape: e.Shape, Begin: begin, End: end}, nil
}

// checkTiling requires the tensors to cover the data section exactly, in some order.
func (f *File) checkTiling() error {
	order := append([]string(nil), f.names...)
	sort.Slice(order, func(i, j int) bool {
		a, b := f.infos[order[i]], f.infos[order[j]]
		if a.Begin != b.Begin {
			return a.Begin < b.Begin
		}
		return a.End < b.End
	})
	var pos int64
	prev := ""
	for _, name := range order {
		in := f.infos[name]
		if in.Begin < pos {
			return fmt.Errorf("safetensors: %s: tensor %q [%d, %d) overlaps tensor %q ending at %d", f.path, name, in.Begin, in.End, prev, pos)
		}
		if in.Begin > pos {
			return fmt.Errorf("safetensors: %s: gap of %d bytes before tensor %q at %d", f.path, in.Begin-pos, name, in.Begin)
		}
		pos, prev = in.End, name
	}
	if pos != int64(len(f.body)) {
		return fmt.Errorf("safetensors: %s: %d bytes after the last tensor are not described by the header", f.path, int64(len(f.body))-pos)
	}
	return nil
}

// Path is the file's path.
func (f *File) Path() string { return f.path }

// Names lists the tensors, sorted.
func (f *File) Names() []string { return append([]string(nil), f.names...) }

// Metadata is the header's __metadata__ (nil when absent).
func (f *File) Metadata() map[string]string { return f.metadata }

// Has reports whether the file holds a tensor of that name.
func (f *File) Has(name string) bool { _, ok := f.infos[name]; return ok }

// Info gives a tensor's dtype, shape and offsets.
func (f *File) Info(name string) (TensorInfo, error) {
	in, ok := f.infos[name]
	if !ok {
		return TensorInfo{}, fmt.Errorf("safetensors: %s: no tensor %q", f.path, name)
	}
	in.Shape = append([]int(nil), in.Shape...)
	return in, nil
}

// Raw gives a tensor's bytes, pointing into the read-only mapping: valid until Close,
// and writing to them faults.
func (f *File) Raw(name string) ([]byte, error) {
	in, ok := f.infos[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: %s: no tensor %q", f.path, name)
	}
	return f.body[in.Begin:in.End:in.End], nil
}

// float32Chunk is how many elements one task of Float32 converts before it drops the pages it read.
const float32Chunk = 16 << 20

// Float32 converts a tensor to a new []float32. A mapped file's pages are read and dropped a chunk at a time
// (a 7B embedding is 1 GB of bf16): loading then holds the converted tensor, not also the mapped bytes.
// The chunks are converted on all cores (the 7B's embedding took 2 s on one).
func (f *File) Float32(name string) ([]float32, error) {
	in, ok := f.infos[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: %s: no tensor %q", f.path, name)
	}
	n := int(in.NumElements())
	dst := make([]float32, n)
	if n == 0 {
		return dst, nil
	}
	size := (in.End - in.Begin) / int64(n) // bytes per element (the header was checked against the shape and dtype)
	chunks := (n + float32Chunk - 1) / float32Chunk
	errs := make([]error, chunks)
	convert := func(k int) {
		lo, hi := k*float32Chunk, min((k+1)*float32Chunk, n)
		b0, b1 := in.Begin+int64(lo)*size, in.Begin+int64(hi)*size
		if err := DecodeFloat32(in.DType, f.body[b0:b1], dst[lo:hi]); err != nil {
			errs[k] = fmt.Errorf("safetensors: %s: tensor %q: %w", f.path, name, err)
			return
		}
		if f.unmap != nil && f.body != nil {
			start := int64(len(f.data) - len(f.body)) // the body's offset in the whole mapping
			errs[k] = dropPages(f.data, start+b0, start+b1)
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), chunks) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := int(next.Add(1) - 1); k < chunks; k = int(next.Add(1) - 1) {
				convert(k)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return dst, nil
}

// Close unmaps the file; Raw slices become invalid.
func (f *File) Close() error {
	if f.unmap == nil {
		return nil
	}
	err := f.unmap()
	f.unmap, f.data, f.body = nil, nil, nil
	if err != nil {
		return fmt.Errorf("safetensors: unmap %s: %w", f.path, err)
	}
	return nil
}
