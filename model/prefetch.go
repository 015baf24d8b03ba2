package model

import "github.com/t2m/t2m/safetensors"

// prefetchAhead is how many projection tensors the loader keeps mapped ahead of the one it quantizes: the
// seven of one Qwen2 layer (466 MB of bf16 in the 7B), so host memory grows by about one layer at most.
const prefetchAhead = 7

// prefetcher maps the pages of the tensors a loader will read next on its own goroutine (safetensors.
// Prefetcher), at most ahead of them mapped and not yet released, so the loader's reads (the upload to the
// GPU quantizer) find the pages mapped instead of faulting them in 4 KiB at a time. A failed prefetch only
// stops prefetching: the loader's own reads fault the pages in as before.
type prefetcher struct {
	ready []chan struct{} // ready[i] closes once tensor i is prefetched (or will not be)
	took  []bool          // tensor i holds a slot (set before ready[i] closes)
	slots chan struct{}   // one token per tensor prefetched and not yet released
	stop  chan struct{}
	done  chan struct{}
	next  int // the next tensor the loader reads
}

// startPrefetch starts mapping names in order, ahead at a time; r need not be a Prefetcher (then nothing is
// prefetched). Names whose dtype is not a float (a pre-quantized checkpoint's uint8 codes, read otherwise)
// are skipped.
func startPrefetch(r safetensors.Reader, names []string, ahead int) *prefetcher {
	p := &prefetcher{ready: make([]chan struct{}, len(names)), took: make([]bool, len(names)), slots: make(chan struct{}, ahead),
		stop: make(chan struct{}), done: make(chan struct{})}
	for i := range p.ready {
		p.ready[i] = make(chan struct{})
	}
	pf, ok := r.(safetensors.Prefetcher)
	go func() {
		defer close(p.done)
		i := 0
		defer func() { // whatever was not prefetched is ready to be read anyway
			for ; i < len(names); i++ {
				close(p.ready[i])
			}
		}()
		if !ok {
			return
		}
		for ; i < len(names); i++ {
			if info, err := r.Info(names[i]); err != nil || !isFloat(info.DType) {
				close(p.ready[i])
				continue
			}
			select {
			case p.slots <- struct{}{}:
			case <-p.stop:
				return
			}
			if err := pf.Prefetch(names[i]); err != nil {
				<-p.slots
				return
			}
			p.took[i] = true
			close(p.ready[i])
		}
	}()
	return p
}

func isFloat(dt safetensors.DType) bool {
	return dt == safetensors.BF16 || dt == safetensors.F16 || dt == safetensors.F32
}

// wait blocks until the loader's next tensor (the next of the names, in order) is prefetched or skipped.
func (p *prefetcher) wait() {
	if p == nil || p.next >= len(p.ready) {
		return
	}
	<-p.ready[p.next]
}

// released tells the prefetcher that the loader has read and released its next tensor (after wait): one more
// may be mapped.
func (p *prefetcher) released() {
	if p == nil || p.next >= len(p.ready) {
		return
	}
	if p.took[p.next] {
		<-p.slots
	}
	p.next++
}

// close stops prefetching and waits for the goroutine.
func (p *prefetcher) close() {
	if p == nil {
		return
	}
	close(p.stop)
	<-p.done
}
