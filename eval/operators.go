package eval

import "sort"

// unsafeOperators always fail the operator layer, even when allowed.
var unsafeOperators = map[string]bool{
	"$where": true, "$function": true, "$accumulator": true, "$merge": true, "$out": true,
	"$currentOp": true, "$collStats": true, "$indexStats": true, "$planCacheStats": true,
}

// extendedJSONKeys are Extended JSON type wrappers: value literals, not operators.
var extendedJSONKeys = map[string]bool{
	"$date": true, "$oid": true, "$numberLong": true, "$numberInt": true, "$numberDouble": true,
	"$numberDecimal": true, "$binary": true, "$timestamp": true, "$regex": true, "$undefined": true,
	"$minKey": true, "$maxKey": true, "$dbPointer": true, "$symbol": true, "$code": true,
}

// OperatorResult is the verdict of layer 2. The sets are sorted.
type OperatorResult struct {
	Passed     bool     `json:"passed"`
	Used       []string `json:"used,omitempty"`
	Violations []string `json:"violations,omitempty"`
	Unsafe     []string `json:"unsafe,omitempty"`
}

// CollectOperators returns every key starting with '$' found at any depth of v
// (objects and arrays), except the Extended JSON wrappers. The values under a
// wrapper are still searched, as in the original.
func CollectOperators(v any) map[string]bool {
	ops := map[string]bool{}
	collectOperators(v, ops)
	return ops
}

func collectOperators(v any, ops map[string]bool) {
	switch t := v.(type) {
	case *Object:
		for i, k := range t.Keys {
			if len(k) > 0 && k[0] == '$' && !extendedJSONKeys[k] {
				ops[k] = true
			}
			collectOperators(t.Values[i], ops)
		}
	case []any:
		for _, x := range t {
			collectOperators(x, ops)
		}
	}
}

// CheckOperators is layer 2 on a query that passed the syntax layer: it passes
// when every operator used is allowed (stage + expression operators) and none is
// on the unsafe list.
func CheckOperators(q *Object, allowed []string) OperatorResult {
	used := CollectOperators(q)
	ok := make(map[string]bool, len(allowed))
	for _, a := range allowed {
		ok[a] = true
	}
	var r OperatorResult
	for op := range used {
		r.Used = append(r.Used, op)
		if !ok[op] {
			r.Violations = append(r.Violations, op)
		}
		if unsafeOperators[op] {
			r.Unsafe = append(r.Unsafe, op)
		}
	}
	sort.Strings(r.Used)
	sort.Strings(r.Violations)
	sort.Strings(r.Unsafe)
	r.Passed = len(r.Violations) == 0 && len(r.Unsafe) == 0
	return r
}
