# t2m — see README.md. `make test` is what CI runs; `make demo` runs the pipeline on the built-in tiny model.
GO ?= go
BIN := bin

.PHONY: build test fmt vet demo fuzz clean build-cuda kernels kernels-check cuda-deps bench

build:
	$(GO) build -buildvcs=auto -o $(BIN)/t2m ./cmd/t2m

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# test installs the CUDA headers first (idempotent; a no-op once there) so `go vet -tags t2mcuda` compiles the
# GPU code on any machine, GPU or not.
test: cuda-deps fmt vet kernels-check build
	$(GO) vet -tags t2mcuda ./...
	$(GO) test -count=1 ./...
	@# The experiment's Python parts (stdlib only) against bin/t2m: prompts, kinds, table.py, run_table.sh's modes.
	@command -v python3 >/dev/null || { echo "make test: python3 is needed for scripts/experiment/test_expdata.py (apt-get install python3)"; exit 1; }
	python3 scripts/experiment/test_expdata.py
	@# The t2mcuda build's tests too where libcuda.so.1 loads (CI has Debian's): without a GPU they check the
	@# no-GPU error path and skip the rest.
	@if ldconfig -p 2>/dev/null | grep -q 'libcuda.so.1 '; then CGO_ENABLED=1 $(GO) test -count=1 -tags t2mcuda ./gpu/...; \
	else echo "make test: no libcuda.so.1, not running the t2mcuda tests"; fi

demo: build
	./scripts/demo.sh

# fuzz runs every fuzz target of the CPU packages for FUZZTIME each (default 10s), one after the other;
# not part of make test (the seed corpora run there as ordinary tests). A failure leaves its input in the
# package's testdata/fuzz/ and stops.
FUZZTIME ?= 10s
fuzz:
	@set -e; for pkg in $$($(GO) list ./... | grep -v '/gpu'); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for fn in $$(grep -h '^func Fuzz' $$dir/*_test.go 2>/dev/null | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
	    echo "fuzz $$pkg $$fn ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

clean:
	rm -rf $(BIN)

# --- CUDA (see gpu/doc.go and kernels/doc.go) ---------------------------------------------------------
NVCC ?= nvcc
KERNEL_SRC := $(wildcard kernels/*.cu)
KERNEL_PTX := $(KERNEL_SRC:.cu=.ptx)

# cuda-deps installs cuda.h, libcuda.so (for linking) and nvcc 11.8 from Debian non-free; CI runs it too.
cuda-deps:
	./scripts/install-cuda-deps.sh

# build-cuda makes the GPU binary; it needs cuda.h and libcuda.so here, and only libcuda.so.1 where it runs.
# It also makes bin/nf4base (pure Go), which scripts/experiment/run_table.sh's qbase mode runs there.
build-cuda:
	CGO_ENABLED=1 $(GO) build -buildvcs=auto -tags t2mcuda -o $(BIN)/t2m-cuda ./cmd/t2m
	$(GO) build -o $(BIN)/nf4base ./scripts/experiment/nf4base

# kernels compiles each kernels/X.cu to kernels/X.ptx (sm_80 PTX, JIT-compiled by the driver on newer
# cards); the first line of the PTX records the SHA-256 of the source followed by each header it includes
# with #include "x.cuh" (in order), so kernels-check notices a changed header too.
KHASH = khash() { { cat "$$1"; for h in $$(sed -n 's/^[[:space:]]*.include "\(.*\)".*/\1/p' "$$1"); do \
	cat "kernels/$$h" || return 1; done; } | sha256sum | cut -d' ' -f1; }

# The kernels of a decode step compile a second time for sm_90 (kernels/X_sm90.ptx), where kernels/pdl.cuh's
# programmatic dependent launch is on; gpu/cuda loads those on Hopper for launches made with Device.PDL.
PDL_SRC := argmax decode embedding nf4_gemm nf4_gemv nf4_wgmma residual rmsnorm rope swiglu
PDL_PTX := $(PDL_SRC:%=kernels/%_sm90.ptx)

kernels: $(KERNEL_PTX) $(PDL_PTX)

# PTX_FOR(arch) compiles the rule's .cu to its target for compute_<arch>, the source hash line first.
PTX_FOR = $(NVCC) -arch=compute_$(1) -O3 -ptx -o $@.tmp $< && \
	$(KHASH) && { echo "// t2m-source: $(notdir $<) sha256=$$(khash $<)"; cat $@.tmp; } > $@ && rm -f $@.tmp

# nf4_wgmma.cu uses wgmma (sm_90a), which nvcc 11.8 does not know (inline PTX): compute_90 PTX with its header
# raised to PTX ISA 8.0 and sm_90a, which the driver's JIT assembles; nf4_wgmma.ptx without PDL (T2M_NO_PDL),
# nf4_wgmma_sm90.ptx with it. Both load on Hopper only (gpu/ops picks them there).
SM90A_FOR = $(NVCC) -arch=compute_90 $(1) -O3 -ptx -o $@.tmp $< && \
	grep -q '^\.version 7\.8$$' $@.tmp && grep -q '^\.target sm_90$$' $@.tmp && $(KHASH) && \
	{ echo "// t2m-source: $(notdir $<) sha256=$$(khash $<)"; \
	  sed -e 's/^\.version 7\.8$$/.version 8.0/' -e 's/^\.target sm_90$$/.target sm_90a/' $@.tmp; } > $@ && rm -f $@.tmp

kernels/nf4_wgmma.ptx: kernels/nf4_wgmma.cu $(wildcard kernels/*.cuh)
	$(call SM90A_FOR,-DT2M_NO_PDL)

kernels/nf4_wgmma_sm90.ptx: kernels/nf4_wgmma.cu $(wildcard kernels/*.cuh)
	$(call SM90A_FOR,)

kernels/%_sm90.ptx: kernels/%.cu $(wildcard kernels/*.cuh)
	$(call PTX_FOR,90)

kernels/%.ptx: kernels/%.cu $(wildcard kernels/*.cuh)
	$(call PTX_FOR,80)

# kernels-check fails when a .cu (or a header it includes) changed without its PTX (and its _sm90 PTX) being
# regenerated, or a .cu has no PTX. It needs neither nvcc nor a GPU (CI runs it).
kernels-check:
	@$(KHASH); fail=0; for ptx in $(KERNEL_PTX) $(PDL_PTX); do \
	  cu=$${ptx%_sm90.ptx}; cu=$${cu%.ptx}.cu; want="// t2m-source: $$(basename $$cu) sha256=$$(khash $$cu)"; \
	  if [ ! -f $$ptx ]; then echo "kernels-check: $$ptx missing: run make kernels"; fail=1; \
	  elif [ "$$(head -n1 $$ptx)" != "$$want" ]; then echo "kernels-check: $$ptx is stale for $$cu: run make kernels"; fail=1; fi; \
	done; exit $$fail

# bench builds the GPU binary and one test binary per package of gpu/ (bin/gpu.test, bin/gpu-cuda.test,
# bin/gpu-ops.test, bin/gpu-machine.test) and copies the HF anchors, the published data and the Qwen2.5 tokenizer into .bench/ (git-ignored); then run
# scripts/bench/run.sh on the GPU machine (carry bin and .bench). See scripts/bench/NOTES.md.
GPU_TEST_PKGS := gpu gpu/cuda gpu/ops gpu/machine

bench: build-cuda
	for p in $(GPU_TEST_PKGS); do CGO_ENABLED=1 $(GO) test -tags t2mcuda -c -o $(BIN)/$$(echo $$p | tr / -).test ./$$p/ || exit 1; done
	rm -rf .bench && mkdir -p .bench && cp ../shared/bench/*.py .bench/ && cp -r ../shared/data/text-to-mongo .bench/data \
		&& cp ../shared/tokenizers/qwen2.5/tokenizer.json .bench/
	@echo "now on the GPU machine (carry bin and .bench): scripts/bench/run.sh, train_vs_hf.sh or before_after.sh"
