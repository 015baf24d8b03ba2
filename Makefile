# t2m — see README.md. `make test` is what CI runs; `make demo` runs the pipeline on the built-in tiny model.
GO ?= go
BIN := bin

.PHONY: build test fmt vet demo clean

build:
	$(GO) build -o $(BIN)/t2m ./cmd/t2m

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

test: fmt vet
	$(GO) test -count=1 ./...

demo: build
	./scripts/demo.sh

clean:
	rm -rf $(BIN)
