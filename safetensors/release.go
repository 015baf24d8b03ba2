package safetensors

import "fmt"

// Releaser is a Reader that can drop a tensor's pages from the process once its bytes have been converted:
// a loader that reads a checkpoint tensor by tensor then holds one tensor of the mapping at a time, not the
// whole file (mapped pages count in the resident set until they are released). File and Dir implement it.
type Releaser interface {
	Release(name string) error
}

// Release tells the kernel the process no longer needs the pages of tensor name (those wholly inside it):
// they leave the resident set; the file's data stays in the page cache, and a later Raw of the same tensor
// faults them back in. It does nothing where files are read rather than mapped.
func (f *File) Release(name string) error {
	in, ok := f.infos[name]
	if !ok {
		return fmt.Errorf("safetensors: %s: no tensor %q", f.path, name)
	}
	if f.unmap == nil || f.body == nil {
		return nil
	}
	start := int64(len(f.data)-len(f.body)) + in.Begin // offsets in the whole mapping
	return dropPages(f.data, start, start+(in.End-in.Begin))
}

// Release drops the pages of tensor name in its shard (File.Release).
func (d *Dir) Release(name string) error {
	f, err := d.FileOf(name)
	if err != nil {
		return err
	}
	return f.Release(name)
}
