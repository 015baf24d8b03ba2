package pipeline

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/t2m/t2m/gguf"
	"github.com/t2m/t2m/internal/bf16"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/tokenizer"
)

// exportTiny merges a random adapter into the tiny model (t2m merge, the real tokenizer copied) and
// exports the merged directory as GGUF of type typ; it returns the merged directory and the file.
func exportTiny(t *testing.T, tmp, typ string) (string, string) {
	t.Helper()
	if _, err := os.Stat(qwenTokenizer); err != nil {
		t.Skip("no ../shared tokenizer")
	}
	merged := filepath.Join(tmp, "merged")
	if _, err := os.Stat(merged); err != nil {
		adapter := filepath.Join(tmp, "adapter")
		tinyAdapter(t, adapter, tinyBase(t).Config)
		if _, err := Merge(MergeOptions{Model: "tiny", Adapter: adapter, Tokenizer: qwenTokenizer, Out: merged}); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(tmp, "tiny-"+typ+".gguf")
	if _, err := ExportGGUF(ExportOptions{Model: merged, Out: out, Type: typ}); err != nil {
		t.Fatal(err)
	}
	return merged, out
}

// The GGUF file read back: qwen2 metadata from the config, the tokenizer (vocabulary padded to the model's
// size, token types, merges, special ids, ChatML template), 27 tensors under llama.cpp's names with ggml
// shapes, and the merged weights' values (bf16 exactly; Q8_0 within its step; norms and biases f32).
func TestExportGGUFStructure(t *testing.T) {
	tmp := t.TempDir()
	for _, typ := range []string{"bf16", "q8_0"} {
		merged, path := exportTiny(t, tmp, typ)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		w, err := model.LoadDir(merged, model.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c := w.Config
		for key, want := range map[string]any{
			"general.architecture": "qwen2", "general.name": "merged", "qwen2.block_count": uint32(c.NumLayers),
			"qwen2.embedding_length": uint32(c.HiddenSize), "qwen2.feed_forward_length": uint32(c.IntermediateSize),
			"qwen2.attention.head_count": uint32(c.NumHeads), "qwen2.attention.head_count_kv": uint32(c.NumKVHeads),
			"qwen2.rope.freq_base": c.RopeTheta, "qwen2.attention.layer_norm_rms_epsilon": c.RMSNormEps,
			"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "qwen2",
			"tokenizer.ggml.eos_token_id": uint32(tokenizer.ImEndID), "tokenizer.ggml.bos_token_id": uint32(tokenizer.EndOfTextID),
			"tokenizer.ggml.padding_token_id": uint32(tokenizer.EndOfTextID), "tokenizer.chat_template": ChatMLTemplate,
			"general.file_type": ggufTypes[typ].fileType,
		} {
			if f.KV[key] != want {
				t.Errorf("%s: %s = %#v, want %#v", typ, key, f.KV[key], want)
			}
		}
		voc, err := tokenizer.ReadVocabulary(qwenTokenizer)
		if err != nil {
			t.Fatal(err)
		}
		tokens, _ := f.KV["tokenizer.ggml.tokens"].([]string)
		types, _ := f.KV["tokenizer.ggml.token_type"].([]int32)
		merges, _ := f.KV["tokenizer.ggml.merges"].([]string)
		if len(tokens) != c.VocabSize || len(types) != c.VocabSize || len(merges) != len(voc.Merges) {
			t.Fatalf("%d tokens, %d types, %d merges; want %d, %d, %d", len(tokens), len(types), len(merges), c.VocabSize, c.VocabSize, len(voc.Merges))
		}
		for id, want := range map[int]struct {
			tok string
			typ int32
		}{0: {"!", 1}, 220: {"Ġ", 1}, tokenizer.ImEndID: {"<|im_end|>", 3}, 151657: {"<tool_call>", 4}, 151665: {"[PAD151665]", 5}, c.VocabSize - 1: {"[PAD152063]", 5}} {
			if tokens[id] != want.tok || types[id] != want.typ {
				t.Errorf("token %d: %q type %d, want %q type %d", id, tokens[id], types[id], want.tok, want.typ)
			}
		}
		if merges[0] != voc.Merges[0][0]+" "+voc.Merges[0][1] {
			t.Errorf("first merge %q, want %q", merges[0], voc.Merges[0])
		}
		if len(f.Tensors) != 1+c.NumLayers*12+2 {
			t.Errorf("%d tensors", len(f.Tensors))
		}
		check := func(name string, shape []uint64, typ gguf.TensorType, want []float32, tol float32) {
			i := f.Tensor(name)
			if i < 0 {
				t.Fatalf("no tensor %s", name)
			}
			if ti := f.Tensors[i]; !slices.Equal(ti.Shape, shape) || ti.Type != typ {
				t.Errorf("%s: %v %v, want %v %v", name, ti.Shape, ti.Type, shape, typ)
			}
			got, err := f.Float32(i)
			if err != nil {
				t.Fatal(err)
			}
			for j := range want {
				if d := got[j] - want[j]; d > tol || d < -tol {
					t.Fatalf("%s[%d] = %v, want %v (tolerance %v)", name, j, got[j], want[j], tol)
				}
			}
		}
		mat, tol := gguf.BF16, float32(0)
		if typ == "q8_0" {
			mat, tol = gguf.Q8_0, 0.03
		}
		H, V := uint64(c.HiddenSize), uint64(c.VocabSize)
		l := w.Layers[1]
		check("token_embd.weight", []uint64{H, V}, mat, w.Embed.F32, tol*2)
		check("blk.1.ffn_down.weight", []uint64{uint64(c.IntermediateSize), H}, mat, l.Down.W.F32, tol)
		check("blk.1.attn_k.bias", []uint64{uint64(c.KVDim())}, gguf.F32, l.K.Bias, 0)
		check("blk.1.ffn_norm.weight", []uint64{H}, gguf.F32, l.PostNorm, 0)
		check("output.weight", []uint64{H, V}, mat, w.LMHead.F32, tol)
		if typ == "bf16" { // the merged weights are bf16 already: written unchanged
			if v := w.Embed.F32[5]; bf16.ToFloat32(bf16.FromFloat32(v)) != v {
				t.Errorf("merged weight %v is not a bf16 value", v)
			}
		}
	}
}

// Bad options are clear errors naming the value; nothing is written.
func TestExportGGUFRefuses(t *testing.T) {
	tmp := t.TempDir()
	out := filepath.Join(tmp, "x.gguf")
	for _, tc := range []struct {
		opts ExportOptions
		want string
	}{
		{ExportOptions{Model: "tiny", Tokenizer: qwenTokenizer, Out: out, Type: "q4_k"}, "q4_k"},
		{ExportOptions{Model: "tiny", Out: out, Type: "bf16"}, "--tokenizer"},
		{ExportOptions{Model: "tiny", Tokenizer: qwenTokenizer, Type: "bf16"}, "--gguf"},
		{ExportOptions{Model: "tiny", Tokenizer: filepath.Join(tmp, "none.json"), Out: out, Type: "bf16"}, "none.json"},
		{ExportOptions{Model: "tiny", Tokenizer: qwenTokenizer, Adapter: filepath.Join(tmp, "nope"), Out: out, Type: "bf16"}, "nope"},
	} {
		_, err := ExportGGUF(tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "export:") {
			t.Errorf("%+v: %v, want an export: error naming %q", tc.opts, err, tc.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%+v: wrote %s", tc.opts, out)
		}
	}
}
