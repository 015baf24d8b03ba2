package layering

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// rule says that the packages matching pkg must not depend, directly or through other packages, on any
// package matching one of forbid. Patterns are paths relative to the module root: "x" is package x only,
// "x/..." is x and every package below it, "..." is every package of the module.
type rule struct {
	pkg    string
	forbid []string
	why    string
	// optional: the pattern may match no package yet (a package still being written); every other rule
	// must match one, so that a renamed package cannot make its rule vacuous.
	optional bool
}

// rules is t2m's layering, the table ARCHITECTURE.md explains. Dependencies point one way:
// cmd → pipeline, bench → train (+ its device registry, which gpu/… fills) → model → lora, quant → safetensors
// → internal/…, and inside gpu/… gpu → gpu/machine → gpu/ops → gpu/cuda; data, eval and tokenizer sit beside
// the model, below the pipelines. Only the non-test build is checked: a test may reach across layers (data's
// tests tokenize prompts, gpu's compare with train's optimizer).
var rules = []rule{
	{pkg: "...", forbid: []string{"cmd/..."},
		why: "cmd/... holds the programs (flags and printing); nothing builds on them"},
	{pkg: "pipeline/...", forbid: []string{"gpu/...", "cmd/..."}, optional: true,
		why: "the pipelines are a library any front end calls (no flags); they pick a device through train's registry, so they build without the GPU code"},
	{pkg: "bench/...", forbid: []string{"gpu/...", "cmd/..."},
		why: "the benchmarks time the paths t2m train and t2m eval run, reached through train's device registry like the pipelines"},
	{pkg: "gpu/...", forbid: []string{"pipeline/...", "cmd/..."},
		why: "the GPU backends execute the model and register themselves; the pipelines choose them, never the reverse"},
	{pkg: "gpu/cuda/...", forbid: []string{"gpu/ops/...", "gpu/machine/...", "gpu"},
		why: "the CUDA runtime and cuBLAS are the bottom of the GPU code: kernel launchers, the machine and the backends build on them"},
	{pkg: "gpu/ops/...", forbid: []string{"gpu/machine/...", "gpu"},
		why: "a kernel launcher is one kernel on the runtime; the machine and the decoder compose launchers, not the reverse"},
	{pkg: "gpu/machine/...", forbid: []string{"gpu"},
		why: "the graph machine executes a model graph on the device; the backends in gpu drive it and register it"},
	{pkg: "train/...", forbid: []string{"gpu/...", "pipeline/...", "cmd/..."},
		why: "the training loop runs on any registered backend; it must build and run without the GPU code"},
	{pkg: "model/...", forbid: []string{"train/...", "gpu/...", "pipeline/...", "eval/...", "data/...", "cmd/..."},
		why: "the model is the one Qwen2 definition; trainers, backends and pipelines use it, it uses none of them"},
	{pkg: "lora/...", forbid: []string{"model/...", "train/...", "gpu/...", "pipeline/...", "eval/...", "data/...", "cmd/..."},
		why: "LoRA parameters and the PEFT format are a leaf below the model"},
	{pkg: "data/...", forbid: []string{"eval/...", "model/...", "lora/...", "quant/...", "safetensors/...", "tokenizer/...",
		"train/...", "gpu/...", "kernels/...", "pipeline/...", "cmd/..."},
		why: "examples, prompts and splits are plain data: no model, no weights, no tokenizer"},
	{pkg: "eval/...", forbid: []string{"model/...", "lora/...", "quant/...", "safetensors/...", "tokenizer/...",
		"train/...", "gpu/...", "kernels/...", "pipeline/...", "cmd/..."},
		why: "scoring reads query text and data examples only, so it judges any model's outputs, ours or not"},
	{pkg: "tokenizer/...", forbid: []string{"model/...", "lora/...", "train/...", "gpu/...", "pipeline/...", "eval/...", "data/...", "cmd/..."},
		why: "the tokenizer reads tokenizer.json and nothing else of t2m"},
	{pkg: "quant/...", forbid: []string{"model/...", "lora/...", "train/...", "gpu/...", "pipeline/...", "eval/...", "data/...", "cmd/..."},
		why: "NF4 in the bitsandbytes layout is a leaf format library below the model and the GPU code"},
	{pkg: "safetensors/...", forbid: []string{"model/...", "lora/...", "quant/...", "train/...", "gpu/...", "pipeline/...", "eval/...", "data/...", "cmd/..."},
		why: "the file format is a leaf library: every weight-handling package reads and writes through it"},
	{pkg: "gguf/...", forbid: []string{"model/...", "lora/...", "quant/...", "tokenizer/...", "train/...", "gpu/...", "pipeline/...", "eval/...", "data/...", "cmd/..."},
		why: "GGUF is a container format like safetensors: the Qwen2 mapping onto it lives in pipeline's export"},
	{pkg: "internal/...", forbid: []string{"model/...", "lora/...", "quant/...", "safetensors/...", "tokenizer/...", "data/...", "eval/...",
		"train/...", "gpu/...", "kernels/...", "pipeline/...", "cmd/..."},
		why: "internal helpers (atomic files, bf16, rng, test metrics) sit below every other package, so each may use them"},
	{pkg: "kernels/...", forbid: []string{"..."},
		why: "the embedded PTX is data: it depends on no Go package of t2m"},
}

// pkg is one package as `go list` describes it. Imports and Deps hold full import paths, as go list writes
// them (Deps: every package it depends on, directly or not, in the non-test build).
type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
	Module     *struct{ Path string }
	Error      *struct{ Err string }
	DepsErrors []*struct{ Err string }
}

// match reports whether the module-relative path rel matches the pattern ("x", "x/..." or "...").
func match(pattern, rel string) bool {
	if pattern == "..." {
		return true
	}
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return rel == base || strings.HasPrefix(rel, base+"/")
	}
	return rel == pattern
}

// check applies rules to the packages of module and returns one line per forbidden dependency, naming
// the chain of imports that makes it (shortest first), and the rules whose pattern matched no package.
func check(module string, pkgs []pkg, rules []rule) (violations, unmatched []string) {
	rel := func(path string) (string, bool) {
		if path == module {
			return ".", true
		}
		r, ok := strings.CutPrefix(path, module+"/")
		return r, ok
	}
	imports := map[string][]string{} // module-relative path → module-relative imports
	for _, p := range pkgs {
		r, _ := rel(p.ImportPath)
		for _, imp := range p.Imports {
			if ri, ok := rel(imp); ok {
				imports[r] = append(imports[r], ri)
			}
		}
	}
	for _, ru := range rules {
		matched := false
		for _, p := range pkgs {
			from, ok := rel(p.ImportPath)
			if !ok || !match(ru.pkg, from) {
				continue
			}
			matched = true
			for _, dep := range p.Deps {
				to, ok := rel(dep)
				if !ok || to == from {
					continue
				}
				for _, f := range ru.forbid {
					if match(f, to) {
						violations = append(violations, fmt.Sprintf("%s imports %s (%s): rule %q forbids %q: %s",
							from, to, strings.Join(chain(imports, from, to), " → "), ru.pkg, f, ru.why))
						break
					}
				}
			}
		}
		if !matched && !ru.optional {
			unmatched = append(unmatched, ru.pkg)
		}
	}
	return violations, unmatched
}

// chain is a shortest import path from → … → to through the module's packages (just [from, to] if none is
// found, which go list's Deps would not allow).
func chain(imports map[string][]string, from, to string) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if cur == to {
			var path []string
			for p := to; p != ""; p = prev[p] {
				path = append(path, p)
			}
			slices.Reverse(path)
			return path
		}
		for _, next := range imports[cur] {
			if _, seen := prev[next]; !seen {
				prev[next] = cur
				queue = append(queue, next)
			}
		}
	}
	return []string{from, to}
}

// goList runs `go list` over the whole module (the test runs in internal/layering, two levels below the
// root) with the given build tags and returns its packages.
func goList(t *testing.T, tags string) []pkg {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the layering test runs `go list` and needs the go command on PATH: %v", err)
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root %s: %v", root, err)
	}
	args := []string{"list", "-json=ImportPath,Imports,Deps,Module,Error,DepsErrors"}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	cmd := exec.Command(goBin, append(args, "./...")...)
	cmd.Dir = root
	// CGO_ENABLED=1 so that the cgo files of the CUDA build are listed with their imports (listing compiles
	// nothing, so no C compiler or CUDA header is needed).
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		if p.Error != nil {
			t.Errorf("go list (tags %q): %s: %s", tags, p.ImportPath, p.Error.Err)
		}
		for _, e := range p.DepsErrors {
			t.Errorf("go list (tags %q): %s: dependency error: %s", tags, p.ImportPath, e.Err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatalf("go list (tags %q) found no packages under %s", tags, root)
	}
	return pkgs
}

// TestLayering checks the rules on the real module, in the default build and in the CUDA build (whose
// gpu files import kernels, train and more).
func TestLayering(t *testing.T) {
	for _, tags := range []string{"", "t2mcuda"} {
		pkgs := goList(t, tags)
		module := pkgs[0].Module.Path
		violations, unmatched := check(module, pkgs, rules)
		for _, v := range violations {
			t.Errorf("tags %q: %s", tags, v)
		}
		for _, u := range unmatched {
			t.Errorf("tags %q: rule for %q matches no package of %s: a package was renamed or removed; update the "+
				"rule table here and in ARCHITECTURE.md", tags, u, module)
		}
		t.Logf("tags %q: %d packages, %d rules, %d violations", tags, len(pkgs), len(rules), len(violations))
	}
}

// TestCheckFindsViolations feeds the checker a made-up module that breaks rules directly and through other
// packages, and one whose near-miss names (gpux, cmdline) must not count as gpu or cmd.
func TestCheckFindsViolations(t *testing.T) {
	const m = "example.com/m"
	p := func(path string, imports []string, deps ...string) pkg {
		full := func(v []string) []string {
			out := make([]string, len(v))
			for i, s := range v {
				out[i] = m + "/" + s
			}
			return out
		}
		return pkg{ImportPath: m + "/" + path, Imports: append(full(imports), "fmt"), Deps: append(full(deps), "fmt")}
	}
	pkgs := []pkg{
		p("cmd/t2m", []string{"model", "pipeline"}, "model", "lora", "gpu/run", "pipeline"),
		p("pipeline", []string{"cmd/t2m"}, "cmd/t2m", "model", "lora", "gpu/run"), // imports the program
		p("model", []string{"lora"}, "lora", "gpu/run"),                           // gpu through lora
		p("lora", []string{"gpu/run"}, "gpu/run"),
		p("gpu/run", nil),
		p("eval", []string{"gpux", "cmdline"}, "gpux", "cmdline"), // near-miss names: allowed
		p("gpux", nil),
		p("cmdline", nil),
		p("kernels", []string{"internal/x"}, "internal/x"),
		p("internal/x", nil),
	}
	rules := []rule{
		{pkg: "...", forbid: []string{"cmd/..."}, why: "programs"},
		{pkg: "pipeline", forbid: []string{"cmd/..."}, why: "no flags"},
		{pkg: "model/...", forbid: []string{"gpu/...", "cmd/..."}, why: "one model"},
		{pkg: "lora", forbid: []string{"gpu"}, why: "leaf"}, // "gpu" alone: gpu/run is not gpu
		{pkg: "eval", forbid: []string{"gpu/...", "cmd/..."}, why: "scoring"},
		{pkg: "kernels", forbid: []string{"..."}, why: "data"},
		{pkg: "absent", forbid: []string{"model"}, why: "renamed"},
		{pkg: "soon/...", forbid: []string{"model"}, why: "being written", optional: true},
	}
	violations, unmatched := check(m, pkgs, rules)
	want := []string{
		`pipeline imports cmd/t2m (pipeline → cmd/t2m): rule "..." forbids "cmd/...": programs`,
		`pipeline imports cmd/t2m (pipeline → cmd/t2m): rule "pipeline" forbids "cmd/...": no flags`,
		`model imports gpu/run (model → lora → gpu/run): rule "model/..." forbids "gpu/...": one model`,
		`kernels imports internal/x (kernels → internal/x): rule "kernels" forbids "...": data`,
	}
	slices.Sort(violations)
	slices.Sort(want)
	if !slices.Equal(violations, want) {
		t.Errorf("violations:\n  %s\nwant:\n  %s", strings.Join(violations, "\n  "), strings.Join(want, "\n  "))
	}
	if !slices.Equal(unmatched, []string{"absent"}) {
		t.Errorf("unmatched rules %q, want [absent]", unmatched)
	}
}

// TestMatch pins the pattern syntax.
func TestMatch(t *testing.T) {
	for _, c := range []struct {
		pattern, rel string
		want         bool
	}{
		{"gpu/...", "gpu", true}, {"gpu/...", "gpu/machine", true}, {"gpu/...", "gpux", false},
		{"gpu", "gpu", true}, {"gpu", "gpu/machine", false}, {"...", "anything/at/all", true},
		{"internal/...", "internal", true}, {"internal/...", "internalx/y", false},
	} {
		if got := match(c.pattern, c.rel); got != c.want {
			t.Errorf("match(%q, %q) = %v, want %v", c.pattern, c.rel, got, c.want)
		}
	}
}
