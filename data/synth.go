package data

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/t2m/t2m/internal/atomicfile"
)

// Sizes of the synthetic splits, near the original data set's 1,544 / 171 / 423.
const (
	synthPerTrainSchema   = 93   // 18 training schemas -> 1,674 examples, split 90/10 into train/eval
	synthPerHeldOutSchema = 140  // 3 held-out schemas -> 420 examples
	synthNegativeRate     = 0.15 // share of examples whose intent names a field the schema lacks
	synthRenameRate       = 0.35 // share of examples whose schema has fields renamed to synonyms
	synthEvalShare        = 0.10
)

// StageOperators and ExpressionOperators are the full operator lists from which every
// synthetic example draws its allowed_ops (a random subset that always contains the
// operators its gold query uses), in this order.
var (
	StageOperators = []string{"$match", "$group", "$sort", "$limit", "$skip", "$project", "$unwind",
		"$lookup", "$addFields", "$count", "$bucket", "$bucketAuto", "$facet", "$replaceRoot",
		"$sortByCount", "$sample", "$set", "$unset"}
	ExpressionOperators = []string{"$sum", "$avg", "$min", "$max", "$first", "$last", "$push",
		"$addToSet", "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$and", "$or", "$not",
		"$nor", "$exists", "$type", "$regex", "$year", "$month", "$dayOfMonth", "$dayOfWeek", "$add",
		"$subtract", "$multiply", "$divide", "$concat", "$substr", "$toLower", "$toUpper", "$cond",
		"$ifNull", "$switch", "$size", "$slice", "$filter", "$map", "$dateToString", "$toDate"}
)

// Generate builds the synthetic data set deterministically from seed: examples of the 18
// training schemas shuffled 90/10 into train and eval, and examples of the 3 held-out
// schemas (never seen in train or eval) in heldOut. The same seed gives the same examples
// on every machine (math/rand/v2 PCG, no map iteration).
func Generate(seed uint64) (train, eval, heldOut []Example, err error) {
	g := &synth{rng: rand.New(rand.NewPCG(seed, 0x74326d64617461))} // second word: "t2mdata"
	var pool []Example
	for i := range trainSchemas {
		exs, err := g.forSchema(&trainSchemas[i], synthPerTrainSchema)
		if err != nil {
			return nil, nil, nil, err
		}
		pool = append(pool, exs...)
	}
	for i := range heldOutSchemas {
		exs, err := g.forSchema(&heldOutSchemas[i], synthPerHeldOutSchema)
		if err != nil {
			return nil, nil, nil, err
		}
		heldOut = append(heldOut, exs...)
	}
	g.rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	g.rng.Shuffle(len(heldOut), func(i, j int) { heldOut[i], heldOut[j] = heldOut[j], heldOut[i] })
	nEval := int(float64(len(pool))*synthEvalShare + 0.5)
	return pool[nEval:], pool[:nEval], heldOut, nil
}

// WriteSplits writes dir/train.jsonl, dir/eval.jsonl and dir/held_out.jsonl, one example
// per line in the original's format (Python json.dumps style). The three belong together: they are
// written to temporary files in dir and replaced together (atomicfile.WriteFiles), so an error (a full
// disk) leaves the previous splits, or none, never a mix; a dir it created for them is removed again.
func WriteSplits(dir string, train, eval, heldOut []Example) (err error) {
	_, statErr := os.Stat(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write splits: %w", err)
	}
	if statErr != nil {
		defer func() {
			if err != nil {
				os.Remove(dir) // only when empty: nothing of anyone else's is touched
			}
		}()
	}
	var files []atomicfile.File
	for _, s := range []struct {
		name string
		exs  []Example
	}{{"train", train}, {"eval", eval}, {"held_out", heldOut}} {
		var buf bytes.Buffer
		for i, ex := range s.exs {
			line, err := MarshalExample(ex)
			if err != nil {
				return fmt.Errorf("write %s example %d: %w", s.name, i, err)
			}
			buf.WriteString(line)
			buf.WriteByte('\n')
		}
		files = append(files, atomicfile.File{Path: filepath.Join(dir, s.name+".jsonl"), Perm: 0o644,
			Fill: func(w io.Writer) error {
				_, err := w.Write(buf.Bytes())
				return err
			}})
	}
	if err := atomicfile.WriteFiles(files...); err != nil {
		return fmt.Errorf("write splits (nothing replaced): %w", err)
	}
	return nil
}

// MarshalExample renders ex as one JSONL line the way the original wrote them
// (json.dumps with ", " and ": " separators, non-ASCII kept).
func MarshalExample(ex Example) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ex); err != nil {
		return "", fmt.Errorf("marshal example: %w", err)
	}
	return PythonJSON(buf.Bytes())
}

// synth holds the generator's random state.
type synth struct {
	rng *rand.Rand
}

// inst is a schema as one example sees it: fields possibly renamed to synonyms.
type inst struct {
	spec   *schemaSpec
	fields []fieldSpec
}

func (g *synth) pick(xs []string) string { return xs[g.rng.IntN(len(xs))] }

func (g *synth) chance(p float64) bool { return g.rng.Float64() < p }

// instance copies spec, renaming one or two fields to synonyms for ~35% of examples.
func (g *synth) instance(spec *schemaSpec) inst {
	in := inst{spec: spec, fields: slices.Clone(spec.Fields)}
	if !g.chance(synthRenameRate) {
		return in
	}
	for range 1 + g.rng.IntN(2) {
		i := g.rng.IntN(len(in.fields))
		f := in.fields[i]
		if len(f.Synonyms) == 0 {
			continue
		}
		name := g.pick(f.Synonyms)
		if in.has(name) {
			continue
		}
		f.Name = name
		in.fields[i] = f
	}
	return in
}

func (in inst) has(name string) bool {
	for _, f := range in.fields {
		if f.Name == name {
			return true
		}
	}
	return false
}

// role returns the fields with one of the given roles, in schema order.
func (in inst) role(roles ...string) []fieldSpec {
	var out []fieldSpec
	for _, f := range in.fields {
		if slices.Contains(roles, f.Role) {
			out = append(out, f)
		}
	}
	return out
}

func (in inst) schema() Schema {
	s := Schema{Collection: in.spec.Collection, Domain: in.spec.Domain}
	for _, f := range in.fields {
		s.Fields = append(s.Fields, f.Field)
	}
	return s
}

// forSchema makes n distinct examples (by intent) of one collection, ~15% negatives.
func (g *synth) forSchema(spec *schemaSpec, n int) ([]Example, error) {
	nNeg := int(float64(n)*synthNegativeRate + 0.5)
	seen := map[string]bool{}
	var out []Example
	for attempt := 0; len(out) < n; attempt++ {
		if attempt > 200*n {
			return nil, fmt.Errorf("synthetic data: only %d distinct examples for %s after %d attempts (add intent kinds or phrasings)", len(out), spec.Collection, attempt)
		}
		in := g.instance(spec)
		negative := len(out) < nNeg
		var intent string
		var output any
		if negative {
			intent, output = g.negative(in)
		} else {
			kind := intentKinds[g.rng.IntN(len(intentKinds))]
			var ok bool
			if intent, output, ok = kind(g, in); !ok {
				continue
			}
		}
		if seen[intent] {
			continue
		}
		ex, err := g.example(in, intent, output, negative)
		if err != nil {
			return nil, err
		}
		seen[intent] = true
		out = append(out, ex)
	}
	return out, nil
}

func (g *synth) example(in inst, intent string, output any, negative bool) (Example, error) {
	var sb strings.Builder
	if err := writePy(&sb, output); err != nil {
		return Example{}, fmt.Errorf("synthetic %s example %q: %w", in.spec.Collection, intent, err)
	}
	ops, err := g.allowedOps(output)
	if err != nil {
		return Example{}, fmt.Errorf("synthetic %s example %q: %w", in.spec.Collection, intent, err)
	}
	return Example{
		Schema:     in.schema(),
		AllowedOps: ops,
		Intent:     intent,
		Output:     json.RawMessage(sb.String()),
		IsNegative: negative,
	}, nil
}

// allowedOps draws a random subset of the operator lists that keeps every operator the
// gold output uses.
func (g *synth) allowedOps(output any) (AllowedOps, error) {
	used := map[string]bool{}
	collectOps(output, used)
	for op := range used {
		if !slices.Contains(StageOperators, op) && !slices.Contains(ExpressionOperators, op) {
			return AllowedOps{}, fmt.Errorf("gold output uses %s, which is in no operator list", op)
		}
	}
	keep := 0.55 + 0.45*g.rng.Float64()
	ops := AllowedOps{StageOperators: []string{}, ExpressionOperators: []string{}}
	for _, op := range StageOperators {
		if used[op] || g.chance(keep) {
			ops.StageOperators = append(ops.StageOperators, op)
		}
	}
	for _, op := range ExpressionOperators {
		if used[op] || g.chance(keep) {
			ops.ExpressionOperators = append(ops.ExpressionOperators, op)
		}
	}
	return ops, nil
}

// collectOps adds every $-key of v to used, except Extended JSON wrappers such as $date.
func collectOps(v any, used map[string]bool) {
	switch t := v.(type) {
	case *pyObject:
		for _, k := range t.keys {
			if strings.HasPrefix(k, "$") && k != "$date" {
				used[k] = true
			}
			collectOps(t.vals[k], used)
		}
	case []any:
		for _, e := range t {
			collectOps(e, used)
		}
	}
}

// obj builds an ordered JSON object from alternating keys and values.
func obj(kv ...any) *pyObject {
	o := &pyObject{vals: map[string]any{}}
	for i := 0; i+1 < len(kv); i += 2 {
		k := kv[i].(string)
		if _, seen := o.vals[k]; !seen {
			o.keys = append(o.keys, k)
		}
		o.vals[k] = kv[i+1]
	}
	return o
}

func num(n int) json.Number { return json.Number(fmt.Sprint(n)) }
