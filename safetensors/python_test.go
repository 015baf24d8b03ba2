package safetensors

import (
	"bytes"
	"encoding/binary"
	"os"
	"regexp"
	"testing"
)

// pythonFile was written by Python's safetensors (save_file, torch 2.11) on the GPU
// machine: scripts/fixtures/make_nf4_fixture.py. It mixes BF16, F32 and U8 tensors
// and carries metadata.
const pythonFile = "../quant/testdata/nf4_ref.safetensors"

// TestPythonWrittenFile reads a file written by the Python library and writes its
// tensors back: header (apart from metadata order) and data must be identical.
func TestPythonWrittenFile(t *testing.T) {
	want, err := os.ReadFile(pythonFile)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open(pythonFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Metadata()["generator"] != "scripts/fixtures/make_nf4_fixture.py" {
		t.Errorf("metadata %v", f.Metadata())
	}
	seen := map[DType]bool{}
	var ts []Tensor
	for _, name := range f.Names() {
		info, _ := f.Info(name)
		raw, _ := f.Raw(name)
		seen[info.DType] = true
		ts = append(ts, Tensor{Name: name, DType: info.DType, Shape: info.Shape, Data: raw})
	}
	if !seen[BF16] || !seen[F32] || !seen[U8] {
		t.Errorf("dtypes %v, want BF16, F32 and U8", seen)
	}
	// Python keeps the metadata in insertion order, a Go map cannot: compare the
	// header without it, and the data section.
	var got bytes.Buffer
	if err := WriteTo(&got, ts, nil); err != nil {
		t.Fatal(err)
	}
	gotHdr, gotBody := split(t, got.Bytes())
	wantHdr, wantBody := split(t, want)
	if len(gotHdr)%8 != 0 {
		t.Errorf("header length %d not 8-aligned", len(gotHdr))
	}
	meta := regexp.MustCompile(`"__metadata__":\{[^}]*\},`)
	wantHdr = meta.ReplaceAll(wantHdr, nil)
	if g, w := bytes.TrimRight(gotHdr, " "), bytes.TrimRight(wantHdr, " "); !bytes.Equal(g, w) {
		t.Errorf("header differs from Python's:\n got %s\nwant %s", g, w)
	}
	if !bytes.Equal(gotBody, wantBody) {
		t.Error("data section differs from Python's")
	}
}

// split returns the JSON header and the data section of a file image.
func split(t *testing.T, b []byte) (header, body []byte) {
	t.Helper()
	n := binary.LittleEndian.Uint64(b)
	if uint64(len(b)) < 8+n {
		t.Fatalf("image of %d bytes, header length %d", len(b), n)
	}
	return b[8 : 8+n], b[8+n:]
}
