package pipeline

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/t2m/t2m/internal/atomicfile"
	"github.com/t2m/t2m/model"
	"github.com/t2m/t2m/safetensors"
)

// DefaultShardBytes is the largest shard Merge writes (Hugging Face save_pretrained's default, 5 GB).
const DefaultShardBytes = 5_000_000_000

// TokenizerFiles are the files of a Hugging Face model directory that Merge copies beside the weights.
var TokenizerFiles = []string{"tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
	"special_tokens_map.json", "added_tokens.json", "generation_config.json"}

// MergeOptions configure Merge (t2m merge).
type MergeOptions struct {
	// Model is a model directory (config.json + bf16/f32 safetensors) or a registry name with built-in
	// weights (tiny); never an NF4 or bnb-4bit checkpoint.
	Model string
	// Adapter is the PEFT LoRA adapter folder to merge in.
	Adapter string
	// Tokenizer, when set, is copied as tokenizer.json; otherwise the model directory's TokenizerFiles are.
	Tokenizer string
	// Out is the merged model directory; an existing one is replaced atomically.
	Out string
	// ShardBytes bounds each safetensors shard (0: DefaultShardBytes).
	ShardBytes int64
}

// MergeResult is a written merged model.
type MergeResult struct {
	Dir     string
	Shards  []string // file names, in order
	Tensors int
	Bytes   int64    // tensor bytes (the index's total_size)
	Copied  []string // tokenizer files copied
	Scaling float32  // the adapter's alpha/r
	Rank    int
}

// LoadFloatModel loads a model directory or registry name with float32 weights (never NF4: a bnb-4bit
// checkpoint is refused) and merges a PEFT adapter into the weights when one is given. It returns the
// weights, the model directory ("" for a registry model) and the adapter (nil without one).
func LoadFloatModel(name, adapter string) (*model.Weights, string, *model.LoRAParams, error) {
	if name == "" {
		return nil, "", nil, fmt.Errorf("--model is required (a model directory or a registry name)")
	}
	w, _, err := LoadWeights("", name, 0, model.LoadOptions{})
	if err != nil {
		return nil, "", nil, err
	}
	dir := ""
	if isModelDir(name) {
		dir = name
	}
	if _, err := w.FloatTensors(); err != nil { // a bnb-4bit checkpoint loads quantized whatever the options
		return nil, "", nil, fmt.Errorf("model %s: %w", name, err)
	}
	var lp *model.LoRAParams
	if adapter != "" {
		if lp, err = model.LoadAdapter(adapter, w.Config); err != nil {
			return nil, "", nil, err
		}
		if err := w.MergeLoRA(lp); err != nil {
			return nil, "", nil, fmt.Errorf("adapter %s: %w", adapter, err)
		}
	}
	return w, dir, lp, nil
}

// isModelDir says whether path holds a config.json.
func isModelDir(path string) bool {
	st, err := os.Stat(filepath.Join(path, "config.json"))
	return err == nil && !st.IsDir()
}

// Merge folds a PEFT adapter into its base model's original weights (W' = W + scaling·B·A, in float32,
// rounded once to bf16) and writes a Hugging Face model directory that transformers loads without PEFT:
// bf16 safetensors shards (model-0000i-of-0000n.safetensors) with model.safetensors.index.json,
// config.json (the base's, dtype bfloat16) and the tokenizer files. Out is replaced atomically: a
// temporary folder beside it, renamed into place when complete. Errors start with "merge:".
func Merge(opts MergeOptions) (*MergeResult, error) {
	res, err := merge(opts)
	if err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	return res, nil
}

func merge(opts MergeOptions) (*MergeResult, error) {
	switch {
	case opts.Adapter == "":
		return nil, fmt.Errorf("--adapter DIR is required (the PEFT adapter to merge)")
	case opts.Out == "":
		return nil, fmt.Errorf("--out DIR is required (the merged model directory to write)")
	case sameDir(opts.Out, opts.Model) || sameDir(opts.Out, opts.Adapter):
		return nil, fmt.Errorf("--out %s would replace the model or adapter it is made from", opts.Out)
	}
	shard := opts.ShardBytes
	if shard <= 0 {
		shard = DefaultShardBytes
	}
	w, dir, lp, err := LoadFloatModel(opts.Model, opts.Adapter)
	if err != nil {
		return nil, err
	}
	tensors, err := w.FloatTensors()
	if err != nil {
		return nil, err
	}
	config, err := mergedConfig(w.Config, dir)
	if err != nil {
		return nil, err
	}
	res := &MergeResult{Dir: filepath.Clean(opts.Out), Tensors: len(tensors), Scaling: lp.Scaling, Rank: lp.Rank}
	err = atomicfile.ReplaceDir(opts.Out, func(tmp string) error {
		if err := writeShards(tmp, tensors, shard, res); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(tmp, "config.json"), config, 0o644); err != nil {
			return err
		}
		copied, err := copyTokenizer(tmp, opts.Tokenizer, dir)
		res.Copied = copied
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("writing %s: %w", opts.Out, err)
	}
	return res, nil
}

// sameDir says whether two paths name the same existing folder (or are the same cleaned path).
func sameDir(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(sa, sb)
}

// writeShards writes tensors as bf16 into shards of at most limit bytes (a larger tensor gets a shard of
// its own) and the index, recording them in res.
func writeShards(dir string, tensors []model.NamedTensor, limit int64, res *MergeResult) error {
	var groups [][]model.NamedTensor
	var size int64
	for _, t := range tensors {
		b := int64(2 * len(t.Data))
		if len(groups) == 0 || size+b > limit && size > 0 {
			groups, size = append(groups, nil), 0
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], t)
		size += b
	}
	weightMap := map[string]string{}
	for i, g := range groups {
		name := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(groups))
		st := make([]safetensors.Tensor, len(g))
		for j, t := range g {
			st[j] = safetensors.BF16Tensor(t.Name, t.Shape, t.Data)
			weightMap[t.Name] = name
			res.Bytes += int64(len(st[j].Data))
		}
		if err := safetensors.Write(filepath.Join(dir, name), st, map[string]string{"format": "pt"}); err != nil {
			return err
		}
		res.Shards = append(res.Shards, name)
	}
	index, err := json.MarshalIndent(map[string]any{"metadata": map[string]any{"total_size": res.Bytes}, "weight_map": weightMap}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, safetensors.IndexFile), index, 0o644)
}

// mergedConfig is the model directory's config.json with its dtype set to bfloat16 (other keys kept), or,
// for a registry model, one rendered from its Config.
func mergedConfig(cfg model.Config, dir string) ([]byte, error) {
	if dir == "" {
		return cfg.HFConfigJSON("bfloat16")
	}
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s/config.json: %w", dir, err)
	}
	m["torch_dtype"] = "bfloat16"
	if _, ok := m["dtype"]; ok {
		m["dtype"] = "bfloat16"
	}
	delete(m, "quantization_config") // the merged weights are plain bf16
	return json.MarshalIndent(m, "", "  ")
}

// copyTokenizer copies tokenizer (as tokenizer.json) when given, else the TokenizerFiles the model
// directory has, into dst; it returns the names copied.
func copyTokenizer(dst, tokenizer, dir string) ([]string, error) {
	var copied []string
	cp := func(src, name string) error {
		in, err := os.Open(src)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(filepath.Join(dst, name))
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return fmt.Errorf("copying %s: %w", src, err)
		}
		copied = append(copied, name)
		return out.Close()
	}
	if tokenizer != "" {
		return copied, cp(tokenizer, "tokenizer.json")
	}
	if dir == "" {
		return nil, nil
	}
	for _, name := range TokenizerFiles {
		src := filepath.Join(dir, name)
		if _, err := os.Stat(src); err != nil {
			continue
		}
		if err := cp(src, name); err != nil {
			return copied, err
		}
	}
	return copied, nil
}
