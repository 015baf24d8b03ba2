package pipeline

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/t2m/t2m/gguf"
	"github.com/t2m/t2m/internal/atomicfile"
	"github.com/t2m/t2m/tokenizer"
)

// ChatMLTemplate is the chat template written into GGUF files: ChatML, as t2m's prompts (data.Prompt) are
// rendered, so llama.cpp and ollama build the same prompt from a system and a user message.
const ChatMLTemplate = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
	"{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"

// GGUF token types (llama.cpp's llama_token_type).
const (
	tokenNormal      int32 = 1
	tokenControl     int32 = 3
	tokenUserDefined int32 = 4
	tokenUnused      int32 = 5
)

// ExportOptions configure ExportGGUF (t2m export --gguf).
type ExportOptions struct {
	// Model is a model directory (typically t2m merge's output) or a registry name with built-in weights.
	Model string
	// Adapter, when set, is merged in memory first (as t2m merge would).
	Adapter string
	// Tokenizer is the tokenizer.json to embed; "" means Model/tokenizer.json.
	Tokenizer string
	// Out is the .gguf file, written atomically.
	Out string
	// Type is the weight type of the matrices: "bf16", "q8_0" or "f32" (norms and biases stay f32).
	Type string
	// Name is general.name ("" : the model's base name).
	Name string
}

// ExportResult is a written GGUF file.
type ExportResult struct {
	Path    string
	Tensors int
	Tokens  int   // vocabulary entries (the model's vocab size, padded as llama.cpp's converter pads)
	Bytes   int64 // file size
}

// ggufTypes maps --type to the matrices' tensor type and general.file_type (llama_ftype).
var ggufTypes = map[string]struct {
	t        gguf.TensorType
	fileType uint32
}{"f32": {gguf.F32, 0}, "q8_0": {gguf.Q8_0, 7}, "bf16": {gguf.BF16, 32}}

// ExportGGUF writes a Qwen2 model as a GGUF file that llama.cpp and ollama load: architecture "qwen2"
// metadata, the weights under llama.cpp's tensor names (matrices in Type, norms and biases in F32), the
// BPE tokenizer (tokens, token types, merges, pre-tokenizer "qwen2", bos/eos/padding ids) and the ChatML
// chat template. The weights are read in float32 from the original (bf16/f32) checkpoint, never NF4.
// Errors start with "export:".
func ExportGGUF(opts ExportOptions) (*ExportResult, error) {
	res, err := exportGGUF(opts)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	return res, nil
}

func exportGGUF(opts ExportOptions) (*ExportResult, error) {
	ft, ok := ggufTypes[opts.Type]
	if !ok {
		return nil, fmt.Errorf("--type %q: want bf16, q8_0 or f32", opts.Type)
	}
	if opts.Out == "" {
		return nil, fmt.Errorf("--gguf FILE is required")
	}
	tokPath := opts.Tokenizer
	if tokPath == "" {
		if !isModelDir(opts.Model) {
			return nil, fmt.Errorf("model %s has no tokenizer.json: pass --tokenizer FILE", opts.Model)
		}
		tokPath = filepath.Join(opts.Model, "tokenizer.json")
	}
	voc, err := tokenizer.ReadVocabulary(tokPath)
	if err != nil {
		return nil, err
	}
	w, dir, _, err := LoadFloatModel(opts.Model, opts.Adapter)
	if err != nil {
		return nil, err
	}
	c := w.Config
	if len(voc.Tokens) > c.VocabSize {
		return nil, fmt.Errorf("tokenizer %s has %d ids, model %s only %d", tokPath, len(voc.Tokens), opts.Model, c.VocabSize)
	}
	name := opts.Name
	if name == "" {
		name = filepath.Base(filepath.Clean(opts.Model))
	}
	kvs := []gguf.KV{
		{Key: "general.architecture", Value: "qwen2"},
		{Key: "general.name", Value: name},
		{Key: "general.file_type", Value: ft.fileType},
		{Key: "general.quantization_version", Value: uint32(2)},
		{Key: "qwen2.context_length", Value: uint32(max(c.MaxPositionEmbeddings, 1))},
		{Key: "qwen2.embedding_length", Value: uint32(c.HiddenSize)},
		{Key: "qwen2.feed_forward_length", Value: uint32(c.IntermediateSize)},
		{Key: "qwen2.block_count", Value: uint32(c.NumLayers)},
		{Key: "qwen2.attention.head_count", Value: uint32(c.NumHeads)},
		{Key: "qwen2.attention.head_count_kv", Value: uint32(c.NumKVHeads)},
		{Key: "qwen2.attention.key_length", Value: uint32(c.HeadDim)},
		{Key: "qwen2.attention.value_length", Value: uint32(c.HeadDim)},
		{Key: "qwen2.rope.freq_base", Value: c.RopeTheta},
		{Key: "qwen2.attention.layer_norm_rms_epsilon", Value: c.RMSNormEps},
	}
	tokKVs, err := tokenizerKVs(voc, c.VocabSize, dir)
	if err != nil {
		return nil, err
	}
	kvs = append(kvs, tokKVs...)
	tensors, err := w.FloatTensors()
	if err != nil {
		return nil, err
	}
	infos := make([]gguf.TensorInfo, len(tensors))
	for i, t := range tensors {
		gname, err := ggufTensorName(t.Name)
		if err != nil {
			return nil, err
		}
		shape := make([]uint64, len(t.Shape)) // ggml order: reversed
		for j, d := range t.Shape {
			shape[len(t.Shape)-1-j] = uint64(d)
		}
		typ := gguf.F32
		if len(shape) == 2 {
			typ = ft.t
			if typ == gguf.Q8_0 && shape[0]%gguf.QK8_0 != 0 {
				typ = gguf.BF16 // rows that are not whole Q8_0 blocks, as llama.cpp's converter falls back
			}
		}
		infos[i] = gguf.TensorInfo{Name: gname, Shape: shape, Type: typ}
	}
	fill := func(i int, out io.Writer) error {
		var b []byte
		switch infos[i].Type {
		case gguf.F32:
			b = gguf.AppendF32(nil, tensors[i].Data)
		case gguf.BF16:
			b = gguf.AppendBF16(nil, tensors[i].Data)
		case gguf.Q8_0:
			var err error
			if b, err = gguf.AppendQ8_0(nil, tensors[i].Data); err != nil {
				return err
			}
		}
		_, err := out.Write(b)
		return err
	}
	if err := os.MkdirAll(filepath.Dir(opts.Out), 0o755); err != nil {
		return nil, err
	}
	err = atomicfile.WriteFile(opts.Out, 0o644, func(f io.Writer) error {
		bw := bufio.NewWriterSize(f, 4<<20)
		if err := gguf.Write(bw, kvs, infos, fill); err != nil {
			return err
		}
		return bw.Flush()
	})
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(opts.Out)
	if err != nil {
		return nil, err
	}
	return &ExportResult{Path: opts.Out, Tensors: len(infos), Tokens: c.VocabSize, Bytes: st.Size()}, nil
}

// ggufLayerNames maps a layer tensor's name after "model.layers.N." to llama.cpp's after "blk.N.".
var ggufLayerNames = map[string]string{
	"input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
	"self_attn.q_proj.weight": "attn_q.weight", "self_attn.q_proj.bias": "attn_q.bias",
	"self_attn.k_proj.weight": "attn_k.weight", "self_attn.k_proj.bias": "attn_k.bias",
	"self_attn.v_proj.weight": "attn_v.weight", "self_attn.v_proj.bias": "attn_v.bias",
	"self_attn.o_proj.weight": "attn_output.weight",
	"mlp.gate_proj.weight":    "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight",
}

// ggufTensorName is llama.cpp's name of a Hugging Face Qwen2 tensor.
func ggufTensorName(hf string) (string, error) {
	switch hf {
	case "model.embed_tokens.weight":
		return "token_embd.weight", nil
	case "model.norm.weight":
		return "output_norm.weight", nil
	case "lm_head.weight":
		return "output.weight", nil
	}
	if rest, ok := strings.CutPrefix(hf, "model.layers."); ok {
		if layer, sub, ok := strings.Cut(rest, "."); ok {
			if g, ok := ggufLayerNames[sub]; ok {
				return "blk." + layer + "." + g, nil
			}
		}
	}
	return "", fmt.Errorf("tensor %s has no GGUF name", hf)
}

// tokenizerKVs are the tokenizer.* metadata: the vocabulary padded to the model's vocab size with
// "[PADi]" tokens of type unused (as llama.cpp's convert_hf_to_gguf.py pads), token types (added special
// tokens are control tokens, other added tokens user-defined), the merges, bos = padding =
// <|endoftext|>, eos = tokenizer_config.json's eos_token in dir (else <|im_end|>), no added bos, and the
// ChatML template.
func tokenizerKVs(v *tokenizer.Vocabulary, vocabSize int, dir string) ([]gguf.KV, error) {
	tokens := make([]string, vocabSize)
	types := make([]int32, vocabSize)
	ids := map[string]int{}
	for id := range tokens {
		tok := ""
		if id < len(v.Tokens) {
			tok = v.Tokens[id]
		}
		switch special, added := v.Added[id]; {
		case tok == "":
			tokens[id], types[id] = fmt.Sprintf("[PAD%d]", id), tokenUnused
		case added && special:
			tokens[id], types[id] = tok, tokenControl
		case added:
			tokens[id], types[id] = tok, tokenUserDefined
		default:
			tokens[id], types[id] = tok, tokenNormal
		}
		ids[tokens[id]] = id
	}
	merges := make([]string, len(v.Merges))
	for i, m := range v.Merges {
		merges[i] = m[0] + " " + m[1]
	}
	eosName := tokenizer.ImEnd
	if name := configEOS(dir); name != "" {
		eosName = name
	}
	eos, okEOS := ids[eosName]
	pad, okPad := ids[tokenizer.EndOfText]
	if !okEOS || !okPad {
		return nil, fmt.Errorf("the tokenizer lacks %s or %s, which a Qwen2 chat model ends and pads with", eosName, tokenizer.EndOfText)
	}
	return []gguf.KV{
		{Key: "tokenizer.ggml.model", Value: "gpt2"},
		{Key: "tokenizer.ggml.pre", Value: "qwen2"},
		{Key: "tokenizer.ggml.tokens", Value: tokens},
		{Key: "tokenizer.ggml.token_type", Value: types},
		{Key: "tokenizer.ggml.merges", Value: merges},
		{Key: "tokenizer.ggml.bos_token_id", Value: uint32(pad)},
		{Key: "tokenizer.ggml.eos_token_id", Value: uint32(eos)},
		{Key: "tokenizer.ggml.padding_token_id", Value: uint32(pad)},
		{Key: "tokenizer.ggml.add_bos_token", Value: false},
		{Key: "tokenizer.chat_template", Value: ChatMLTemplate},
	}, nil
}

// configEOS is the eos_token of dir/tokenizer_config.json (a string, or an object with "content"), or "".
func configEOS(dir string) string {
	if dir == "" {
		return ""
	}
	raw, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil {
		return ""
	}
	var c struct {
		EOS json.RawMessage `json:"eos_token"`
	}
	if json.Unmarshal(raw, &c) != nil || len(c.EOS) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(c.EOS, &s) == nil {
		return s
	}
	var obj struct {
		Content string `json:"content"`
	}
	if json.Unmarshal(c.EOS, &obj) == nil {
		return obj.Content
	}
	return ""
}
