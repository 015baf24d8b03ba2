package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// IndexFile and SingleFile are the names Hugging Face gives a checkpoint's files.
const (
	IndexFile  = "model.safetensors.index.json"
	SingleFile = "model.safetensors"
)

// Dir is a checkpoint directory: the shards listed by model.safetensors.index.json,
// or a single model.safetensors, looked up as one set of tensors. Errors name the
// shard a tensor lives in.
type Dir struct {
	dir    string
	files  []*File          // open shards
	byName map[string]*File // tensor → shard holding it
	names  []string
}

var _ Reader = (*Dir)(nil)

type indexJSON struct {
	WeightMap map[string]string `json:"weight_map"`
}

// OpenDir opens the checkpoint in dir. With an index, every tensor of weight_map must
// exist in the shard it names; shards are mapped, not read.
func OpenDir(dir string) (*Dir, error) {
	d := &Dir{dir: dir, byName: map[string]*File{}}
	indexPath := filepath.Join(dir, IndexFile)
	buf, err := os.ReadFile(indexPath)
	switch {
	case errors.Is(err, os.ErrNotExist):
		f, err := Open(filepath.Join(dir, SingleFile))
		if err != nil {
			return nil, fmt.Errorf("%w (and no %s in %s)", err, IndexFile, dir)
		}
		d.files = []*File{f}
		for _, n := range f.names {
			d.byName[n] = f
		}
	case err != nil:
		return nil, fmt.Errorf("safetensors: %w", err)
	default:
		if err := d.openShards(indexPath, buf); err != nil {
			d.Close()
			return nil, err
		}
	}
	for n := range d.byName {
		d.names = append(d.names, n)
	}
	sort.Strings(d.names)
	return d, nil
}

func (d *Dir) openShards(indexPath string, buf []byte) error {
	var idx indexJSON
	if err := json.Unmarshal(buf, &idx); err != nil {
		return fmt.Errorf("safetensors: %s: %w", indexPath, err)
	}
	if len(idx.WeightMap) == 0 {
		return fmt.Errorf("safetensors: %s: empty or missing weight_map", indexPath)
	}
	shards := map[string]*File{}
	names := make([]string, 0, len(idx.WeightMap))
	for n := range idx.WeightMap {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		shard := idx.WeightMap[name]
		if shard == "" || shard != filepath.Base(shard) || strings.HasPrefix(shard, ".") {
			return fmt.Errorf("safetensors: %s: tensor %q maps to %q, not a file name in the same directory", indexPath, name, shard)
		}
		f, ok := shards[shard]
		if !ok {
			var err error
			f, err = Open(filepath.Join(d.dir, shard))
			if err != nil {
				return fmt.Errorf("%w (listed in %s for tensor %q)", err, indexPath, name)
			}
			shards[shard] = f
			d.files = append(d.files, f)
		}
		if !f.Has(name) {
			return fmt.Errorf("safetensors: %s: no tensor %q, which %s places there", f.path, name, indexPath)
		}
		d.byName[name] = f
	}
	return nil
}

// Names lists the tensors of all shards, sorted.
func (d *Dir) Names() []string { return append([]string(nil), d.names...) }

// FileOf gives the shard holding a tensor.
func (d *Dir) FileOf(name string) (*File, error) {
	f, ok := d.byName[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: checkpoint %s: no tensor %q", d.dir, name)
	}
	return f, nil
}

// Info gives a tensor's dtype, shape and offsets within its shard.
func (d *Dir) Info(name string) (TensorInfo, error) {
	f, err := d.FileOf(name)
	if err != nil {
		return TensorInfo{}, err
	}
	return f.Info(name)
}

// Raw gives a tensor's bytes in its shard's mapping (valid until Close).
func (d *Dir) Raw(name string) ([]byte, error) {
	f, err := d.FileOf(name)
	if err != nil {
		return nil, err
	}
	return f.Raw(name)
}

// Float32 converts an F32, BF16 or F16 tensor to a new []float32.
func (d *Dir) Float32(name string) ([]float32, error) {
	f, err := d.FileOf(name)
	if err != nil {
		return nil, err
	}
	return f.Float32(name)
}

// Close unmaps every shard.
func (d *Dir) Close() error {
	var first error
	for _, f := range d.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	d.files = nil
	return first
}
