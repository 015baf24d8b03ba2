package safetensors

import (
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeTemp(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.safetensors")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// image builds a file from a literal header (padded by the caller or not) and body.
func image(header string, body []byte) []byte {
	b := make([]byte, 8, 8+len(header)+len(body))
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	return append(b, body...)
}

func TestRoundTrip(t *testing.T) {
	w := []float32{1, -2.5, 3.25, 0, 1e-3, -7}
	bf := []float32{1, 0.5, -0.25, 3}
	tensors := []Tensor{
		BF16Tensor("b.bf16", []int{2, 2}, bf),
		F32Tensor("a.weight", []int{2, 3}, w),
		U8Tensor("c.codes", []int{3, 1}, []byte{7, 8, 9}),
		F32Tensor("d.scalar", []int{}, []float32{42}),
		{Name: "e.empty", DType: F32, Shape: []int{0, 4}, Data: nil},
	}
	p := filepath.Join(t.TempDir(), "rt.safetensors")
	if err := Write(p, tensors, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	buf, _ := os.ReadFile(p)
	if n := binary.LittleEndian.Uint64(buf); n%8 != 0 {
		t.Errorf("header length %d not 8-aligned", n)
	}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, want := f.Names(), []string{"a.weight", "b.bf16", "c.codes", "d.scalar", "e.empty"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Names = %v, want %v", got, want)
	}
	if f.Metadata()["format"] != "pt" {
		t.Errorf("metadata = %v", f.Metadata())
	}
	in, err := f.Info("a.weight")
	if err != nil || in.DType != F32 || !reflect.DeepEqual(in.Shape, []int{2, 3}) {
		t.Errorf("Info(a.weight) = %+v, %v", in, err)
	}
	if got, _ := f.Float32("a.weight"); !reflect.DeepEqual(got, w) {
		t.Errorf("a.weight = %v, want %v", got, w)
	}
	if got, _ := f.Float32("b.bf16"); !reflect.DeepEqual(got, bf) {
		t.Errorf("b.bf16 = %v, want %v", got, bf)
	}
	if got, _ := f.Raw("c.codes"); string(got) != "\x07\x08\x09" {
		t.Errorf("c.codes = %v", got)
	}
	if got, _ := f.Float32("d.scalar"); !reflect.DeepEqual(got, []float32{42}) {
		t.Errorf("d.scalar = %v", got)
	}
	if got, err := f.Float32("e.empty"); err != nil || len(got) != 0 {
		t.Errorf("e.empty = %v, %v", got, err)
	}
	if _, err := f.Float32("c.codes"); err == nil || !strings.Contains(err.Error(), "c.codes") {
		t.Errorf("Float32 of U8 should fail naming the tensor, got %v", err)
	}
	if _, err := f.Info("nope"); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("missing tensor error should name the file, got %v", err)
	}
	// Like save_file: F32 (higher dtype rank) before BF16 before U8 in the data section.
	a, _ := f.Info("a.weight")
	b, _ := f.Info("b.bf16")
	c, _ := f.Info("c.codes")
	if !(a.Begin < b.Begin && b.Begin < c.Begin) {
		t.Errorf("data order a=%d b=%d c=%d, want F32 < BF16 < U8", a.Begin, b.Begin, c.Begin)
	}
}

// TestPythonBytes reads bytes laid out as safetensors.numpy.save_file writes them for
// {"a": float32 [2], "b": bfloat16 [1,2]} with metadata {"format": "np"}: header padded
// with spaces to a multiple of 8, F32 before BF16. (quant/testdata/nf4_ref.safetensors
// is a real Python-written file read by quant's tests.)
func TestPythonBytes(t *testing.T) {
	hdr := `{"__metadata__":{"format":"np"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[1,2],"data_offsets":[8,12]}}`
	for len(hdr)%8 != 0 {
		hdr += " "
	}
	body := append(F32Bytes([]float32{1.5, -3}), 0x80, 0x3f, 0x00, 0xc0) // bf16 1.0, -2.0
	f, err := Parse("py", image(hdr, body))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := f.Float32("a"); !reflect.DeepEqual(got, []float32{1.5, -3}) {
		t.Errorf("a = %v", got)
	}
	if got, _ := f.Float32("b"); !reflect.DeepEqual(got, []float32{1, -2}) {
		t.Errorf("b = %v", got)
	}
	// Our writer produces the same bytes.
	p := filepath.Join(t.TempDir(), "w.safetensors")
	err = Write(p, []Tensor{
		{Name: "b", DType: BF16, Shape: []int{1, 2}, Data: []byte{0x80, 0x3f, 0x00, 0xc0}},
		F32Tensor("a", []int{2}, []float32{1.5, -3}),
	}, map[string]string{"format": "np"})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); string(got) != string(image(hdr, body)) {
		t.Errorf("writer bytes differ:\n got %q\nwant %q", got, image(hdr, body))
	}
}

func TestValidationErrors(t *testing.T) {
	ok := `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[4],"data_offsets":[8,12]}}`
	body := make([]byte, 12)
	if _, err := Parse("ok", image(ok, body)); err != nil {
		t.Fatalf("valid image rejected: %v", err)
	}
	cases := []struct {
		name, header string
		body         []byte
		want         []string
	}{
		{"truncated", ok, body[:10], []string{"truncated", `"b"`}},
		{"overlap", `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}`, body[:8], []string{"overlaps"}},
		{"gap", `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[2],"data_offsets":[10,12]}}`, body, []string{"gap", `"b"`}},
		{"size mismatch", `{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, body[:8], []string{`"a"`, "needs 12 bytes"}},
		{"unknown dtype", `{"a":{"dtype":"F17","shape":[2],"data_offsets":[0,8]}}`, body[:8], []string{"F17"}},
		{"trailing bytes", `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, body, []string{"4 bytes after"}},
		{"bad json", `{"a":`, nil, []string{"JSON"}},
		{"negative dim", `{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, body[:8], []string{"negative"}},
	}
	for _, c := range cases {
		_, err := Parse("bad.safetensors", image(c.header, c.body))
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, w := range append(c.want, "bad.safetensors") {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", c.name, err, w)
			}
		}
	}
	// Header length beyond the file and beyond the limit.
	b := image(ok, body)
	binary.LittleEndian.PutUint64(b, uint64(len(b)))
	if _, err := Parse("h", b); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("header past EOF: %v", err)
	}
	binary.LittleEndian.PutUint64(b, MaxHeaderSize+1)
	if _, err := Parse("h", b); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("huge header: %v", err)
	}
	if _, err := Parse("h", []byte{1, 2}); err == nil {
		t.Error("2-byte file accepted")
	}
}

func TestOpenTruncatedFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "t.safetensors")
	if err := Write(p, []Tensor{F32Tensor("w", []int{4, 4}, make([]float32, 16))}, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 8+64+32); err != nil { // 64-byte header, half the 64 data bytes
		t.Fatal(err)
	}
	_, err := Open(p)
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), `"w"`) {
		t.Errorf("truncated file: %v", err)
	}
}

func TestOpenDirSharded(t *testing.T) {
	dir := t.TempDir()
	if err := Write(filepath.Join(dir, "model-00001-of-00002.safetensors"), []Tensor{F32Tensor("x", []int{1}, []float32{1})}, nil); err != nil {
		t.Fatal(err)
	}
	if err := Write(filepath.Join(dir, "model-00002-of-00002.safetensors"), []Tensor{BF16Tensor("y", []int{2}, []float32{2, 3})}, nil); err != nil {
		t.Fatal(err)
	}
	index := `{"metadata":{"total_size":8},"weight_map":{"x":"model-00001-of-00002.safetensors","y":"model-00002-of-00002.safetensors"}}`
	os.WriteFile(filepath.Join(dir, IndexFile), []byte(index), 0o644)
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d.Names(), []string{"x", "y"}) {
		t.Errorf("Names = %v", d.Names())
	}
	if got, _ := d.Float32("y"); !reflect.DeepEqual(got, []float32{2, 3}) {
		t.Errorf("y = %v", got)
	}
	if f, _ := d.FileOf("y"); !strings.HasSuffix(f.Path(), "00002-of-00002.safetensors") {
		t.Errorf("FileOf(y) = %s", f.Path())
	}
	d.Close()

	// The index names a tensor its shard lacks.
	bad := strings.Replace(index, `"y":"model-00002`, `"z":"model-00001-of-00002.safetensors","y":"model-00002`, 1)
	os.WriteFile(filepath.Join(dir, IndexFile), []byte(bad), 0o644)
	if _, err := OpenDir(dir); err == nil || !strings.Contains(err.Error(), `"z"`) || !strings.Contains(err.Error(), "00001-of-00002") {
		t.Errorf("missing tensor in shard: %v", err)
	}
	// A shard path escaping the directory.
	os.WriteFile(filepath.Join(dir, IndexFile), []byte(`{"weight_map":{"x":"../m.safetensors"}}`), 0o644)
	if _, err := OpenDir(dir); err == nil {
		t.Error("../ shard accepted")
	}
	// Single file, no index.
	one := t.TempDir()
	Write(filepath.Join(one, SingleFile), []Tensor{F32Tensor("z", []int{1}, []float32{5})}, nil)
	d, err = OpenDir(one)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got, _ := d.Float32("z"); !reflect.DeepEqual(got, []float32{5}) {
		t.Errorf("z = %v", got)
	}
}

func TestAtomicWriteFailureLeavesOldFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.safetensors")
	if err := Write(p, []Tensor{F32Tensor("w", []int{1}, []float32{1})}, nil); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(p)
	boom := errors.New("boom")
	err := WriteFileAtomic(p, func(w io.Writer) error { w.Write([]byte("partial")); return boom })
	if !errors.Is(err, boom) {
		t.Errorf("err = %v", err)
	}
	after, _ := os.ReadFile(p)
	if string(before) != string(after) {
		t.Error("failed write changed the file")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temp file left behind: %v", ents)
	}
	if err := Write(p, []Tensor{{Name: "w", DType: F32, Shape: []int{2}, Data: []byte{1}}}, nil); err == nil || !strings.Contains(err.Error(), `"w"`) {
		t.Errorf("bad data length: %v", err)
	}
}

func TestF16ToFloat32(t *testing.T) {
	cases := map[uint16]float32{
		0x3c00: 1, 0xc000: -2, 0x3555: 0.333251953125, 0x7bff: 65504,
		0x0001: 1.0 / (1 << 24), 0x0400: 1.0 / (1 << 14), 0x8000: float32(math.Copysign(0, -1)),
		0x7c00: float32(math.Inf(1)),
	}
	for h, want := range cases {
		if got := F16ToFloat32(h); got != want || math.Signbit(float64(got)) != math.Signbit(float64(want)) {
			t.Errorf("f16 %#04x = %v, want %v", h, got, want)
		}
	}
	if !math.IsNaN(float64(F16ToFloat32(0x7e00))) {
		t.Error("f16 NaN")
	}
}
