package eval

import (
	"sort"
	"strings"
)

// aliasOperators are the stages whose direct child keys are output names, not
// field references.
var aliasOperators = map[string]bool{"$group": true, "$bucket": true, "$bucketAuto": true}

// FieldResult is the verdict of layer 3. The sets are sorted.
type FieldResult struct {
	Passed       bool     `json:"passed"`
	Referenced   []string `json:"referenced,omitempty"`
	Hallucinated []string `json:"hallucinated,omitempty"`
}

// CollectFieldRefs returns the root names of the fields v refers to, with the
// original's recursion:
//   - a string starting with '$' but not "$$" adds the part of its path before
//     the first '.' ("$addr.city" adds "addr"; "$$ROOT" adds nothing);
//   - in an object, a '$'-key recurses into its value with the alias flag set
//     when the key is $group, $bucket or $bucketAuto (cleared otherwise); a plain
//     key adds its root unless the alias flag is set, and its value is recursed
//     with the flag cleared;
//   - array items are recursed with the flag unchanged.
func CollectFieldRefs(v any) map[string]bool {
	refs := map[string]bool{}
	collectFieldRefs(v, false, refs)
	return refs
}

func collectFieldRefs(v any, alias bool, refs map[string]bool) {
	switch t := v.(type) {
	case string:
		if strings.HasPrefix(t, "$") && !strings.HasPrefix(t, "$$") {
			refs[rootOf(t[1:])] = true
		}
	case *Object:
		for i, k := range t.Keys {
			switch {
			case strings.HasPrefix(k, "$"):
				collectFieldRefs(t.Values[i], aliasOperators[k], refs)
			case alias:
				collectFieldRefs(t.Values[i], false, refs)
			default:
				refs[rootOf(k)] = true
				collectFieldRefs(t.Values[i], false, refs)
			}
		}
	case []any:
		for _, x := range t {
			collectFieldRefs(x, alias, refs)
		}
	}
}

// rootOf is the part of a dotted path before the first '.'.
func rootOf(path string) string {
	if i := strings.IndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return path
}

// CheckFields is layer 3 on a query that passed the syntax layer. References are
// collected from the "pipeline" if present, else the "filter" if present, else
// the whole query, plus the "projection" if present; "_id" and "type" are
// dropped; any other reference that is not a schema field name fails.
func CheckFields(q *Object, fieldNames map[string]bool) FieldResult {
	var refs map[string]bool
	if body, ok := q.Get("pipeline"); ok {
		refs = CollectFieldRefs(body)
	} else if body, ok := q.Get("filter"); ok {
		refs = CollectFieldRefs(body)
	} else {
		refs = CollectFieldRefs(q)
	}
	if proj, ok := q.Get("projection"); ok {
		collectFieldRefs(proj, false, refs)
	}
	delete(refs, "_id")
	delete(refs, "type")
	var r FieldResult
	for f := range refs {
		r.Referenced = append(r.Referenced, f)
		if !fieldNames[f] {
			r.Hallucinated = append(r.Hallucinated, f)
		}
	}
	sort.Strings(r.Referenced)
	sort.Strings(r.Hallucinated)
	r.Passed = len(r.Hallucinated) == 0
	return r
}
