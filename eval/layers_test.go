package eval

import (
	"reflect"
	"sort"
	"strings"
	"testing"
)

func mustObject(t *testing.T, s string) *Object {
	t.Helper()
	v, err := ParsePython(s)
	if err != nil {
		t.Fatalf("ParsePython(%q): %v", s, err)
	}
	o, ok := v.(*Object)
	if !ok {
		t.Fatalf("%q is not an object", s)
	}
	return o
}

func keys(m map[string]bool) []string {
	out := []string{}
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestCheckSyntax(t *testing.T) {
	cases := []struct {
		in     string
		pass   bool
		reason string // a substring of the failure reason
	}{
		{`{"type": "find", "filter": {}}`, true, ""},
		{`{"type": "aggregate", "pipeline": []}`, true, ""},
		{`{"type": "aggregate", "pipeline": [{"$match": {}, "note": 1}]}`, true, ""},          // other keys unchecked
		{`{"type": "aggregate", "pipeline": [{"$match": {}, "$match": {"a": 1}}]}`, true, ""}, // one distinct key
		{`{"type": "find", "filter": {"a": NaN}}`, true, ""},
		{`{"type": "find", "filter": {}, "filter": []}`, false, "'filter' must be an object"}, // last wins
		{`{"type": "find"}`, false, "Find query missing 'filter'"},
		{`{"type": "find", "filter": null}`, false, "'filter' must be an object"},
		{`{"type": "aggregate"}`, false, "Aggregate query missing 'pipeline'"},
		{`{"type": "aggregate", "pipeline": {"$match": {}}}`, false, "'pipeline' must be a list"},
		{`{"type": "aggregate", "pipeline": [[]]}`, false, "Pipeline stage 0 is not an object"},
		{`{"type": "aggregate", "pipeline": [{"$match": {}}, {"match": {}}]}`, false, "Pipeline stage 1 must have exactly one $-prefixed key, got 0"},
		{`{"type": "aggregate", "pipeline": [{"$match": {}, "$sort": {}}]}`, false, "got 2"},
		{`{"type": "update", "filter": {}}`, false, "Invalid type 'update'"},
		{`{"type": null, "filter": {}}`, false, "Invalid type 'None'"},
		{`{"type": ["find"], "filter": {}}`, false, "Invalid type '['find']'"},
		{`{"filter": {}}`, false, "Missing 'type' field"},
		{`{"error": "no such field"}`, false, "Missing 'type' field"},
		{`["type"]`, false, "Top-level value must be an object"},
		{`"find"`, false, "Top-level value must be an object"},
		{`{"type": "find", "filter": {}`, false, "Invalid JSON"},
		{`{'type': 'find'}`, false, "Invalid JSON"},
		{``, false, "Invalid JSON"},
	}
	for _, c := range cases {
		r := CheckSyntax(c.in)
		if r.Passed != c.pass {
			t.Errorf("CheckSyntax(%s): passed=%v, want %v (%v)", c.in, r.Passed, c.pass, r.Errors)
			continue
		}
		if c.pass && (r.Query == nil || len(r.Errors) != 0) {
			t.Errorf("CheckSyntax(%s): passed without a query or with errors %v", c.in, r.Errors)
		}
		if !c.pass && (len(r.Errors) != 1 || !strings.Contains(r.Errors[0], c.reason)) {
			t.Errorf("CheckSyntax(%s): errors %q, want one containing %q", c.in, r.Errors, c.reason)
		}
	}
}

func TestCollectOperators(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"type": "find", "filter": {"a": {"$gt": 1}}}`, "$gt"},
		{`{"a": {"$date": "2024-01-01"}, "b": {"$oid": "x"}, "c": {"$numberLong": "1"}}`, ""},
		{`{"a": {"$date": {"$where": "1"}}}`, "$where"}, // values under a wrapper are searched
		{`{"a": {"$regex": "^x", "$options": "i"}}`, "$options"},
		{`{"pipeline": [{"$group": {"_id": "$x", "n": {"$sum": 1}}}, [{"$limit": 1}]]}`, "$group,$limit,$sum"},
		{`{"a": "$notAnOperator", "b": ["$$ROOT"]}`, ""}, // strings are never operators
		{`{"$": 1}`, "$"},
	}
	for _, c := range cases {
		got := strings.Join(keys(CollectOperators(mustObject(t, c.in))), ",")
		if got != c.want {
			t.Errorf("CollectOperators(%s) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestCheckOperators(t *testing.T) {
	q := mustObject(t, `{"type": "aggregate", "pipeline": [{"$match": {"d": {"$gte": {"$date": "2024-01-01"}}}}, {"$count": "n"}]}`)
	if r := CheckOperators(q, []string{"$match", "$count", "$gte"}); !r.Passed || !reflect.DeepEqual(r.Used, []string{"$count", "$gte", "$match"}) {
		t.Errorf("allowed query: %+v, want pass with used [$count $gte $match]", r)
	}
	if r := CheckOperators(q, []string{"$match", "$gte"}); r.Passed || !reflect.DeepEqual(r.Violations, []string{"$count"}) {
		t.Errorf("$count not allowed: %+v, want violation [$count]", r)
	}
	w := mustObject(t, `{"type": "find", "filter": {"$where": "this.a > 1"}}`)
	if r := CheckOperators(w, []string{"$where"}); r.Passed || !reflect.DeepEqual(r.Unsafe, []string{"$where"}) {
		t.Errorf("$where even when allowed: %+v, want unsafe failure", r)
	}
	for _, op := range []string{"$function", "$accumulator", "$merge", "$out", "$currentOp", "$collStats", "$indexStats", "$planCacheStats"} {
		q := mustObject(t, `{"type": "aggregate", "pipeline": [{"`+op+`": {}}]}`)
		if r := CheckOperators(q, []string{op}); r.Passed {
			t.Errorf("%s allowed: passed, want always-fail", op)
		}
	}
}

func TestCollectFieldRefs(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"filter keys and dotted roots", `{"status": "a", "addr.city": "x", "$or": [{"age": {"$gt": 1}}]}`, "addr,age,status"},
		{"$-strings and dotted paths", `{"$project": {"c": "$addr.city", "t": {"$add": ["$a", "$b.c", 1]}}}`, "c,t,a,addr,b"},
		{"$$ variables ignored", `{"$project": {"r": "$$ROOT", "n": "$$NOW", "v": "$$this.x"}}`, "n,r,v"},
		{"$group aliases skipped", `{"$group": {"_id": "$dept", "total": {"$sum": "$salary"}}}`, "dept,salary"},
		{"$bucket aliases skipped", `{"$bucket": {"groupBy": "$age", "boundaries": [0, 10], "default": "other", "output": {"n": {"$sum": 1}}}}`, "age,n"},
		{"$bucketAuto aliases skipped", `{"$bucketAuto": {"groupBy": "$price", "buckets": 4}}`, "price"},
		{"nested group in facet", `{"$facet": {"byDept": [{"$group": {"_id": "$d", "avg": {"$avg": "$s"}}}]}}`, "byDept,d,s"},
		{"alias flag cleared below an alias key", `{"$group": {"_id": {"y": {"$year": "$ts"}, "k": "v"}}}`, "k,ts,y"},
		{"array under $group keeps the flag", `{"$group": [{"alias": 1}]}`, ""},
		{"array of plain objects in filter", `{"$and": [{"a": 1}, {"b.c": 2}]}`, "a,b"},
		{"$ alone is an empty root", `{"$project": {"x": "$"}}`, ",x"},
		{"$date wrapper value not a field", `{"ts": {"$gte": {"$date": "2024-01-01"}}}`, "ts"},
	}
	for _, c := range cases {
		v, err := ParsePython(c.in)
		if err != nil {
			t.Fatal(err)
		}
		want := strings.Split(c.want, ",")
		if c.want == "" {
			want = []string{}
		}
		sort.Strings(want)
		if got := keys(CollectFieldRefs(v)); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: CollectFieldRefs(%s) = %q, want %q", c.name, c.in, got, want)
		}
	}
}

func TestCheckFields(t *testing.T) {
	schema := map[string]bool{"dept": true, "salary": true, "name": true, "hired_at": true}
	cases := []struct {
		in           string
		pass         bool
		hallucinated string
	}{
		{`{"type": "aggregate", "pipeline": [{"$group": {"_id": "$dept", "total": {"$sum": "$salary"}}}, {"$sort": {"total": -1}}]}`, false, "total"},
		{`{"type": "aggregate", "pipeline": [{"$group": {"_id": "$dept", "total": {"$sum": "$salary"}}}]}`, true, ""},
		{`{"type": "find", "filter": {"_id": 1, "name.first": "a"}, "projection": {"salary": 1, "_id": 0}}`, true, ""},
		{`{"type": "find", "filter": {}, "projection": {"bonus": 1}}`, false, "bonus"},
		{`{"type": "find", "filter": {"type": "x"}}`, true, ""}, // "type" is always dropped
		{`{"type": "find", "filter": {"hired_at": {"$gte": {"$date": "2024-01-01T00:00:00Z"}}}}`, true, ""},
		// pipeline is preferred over filter even for a find
		{`{"type": "find", "filter": {"ghost": 1}, "pipeline": [{"$match": {"dept": "x"}}]}`, true, ""},
		// neither pipeline nor filter: the whole object ("limit" is a plain key)
		{`{"type": "find", "limit": 3}`, false, "limit"},
		{`{"type": "aggregate", "pipeline": [{"$project": {"root": "$$ROOT"}}]}`, false, "root"},
	}
	for _, c := range cases {
		r := CheckFields(mustObject(t, c.in), schema)
		if r.Passed != c.pass || strings.Join(r.Hallucinated, ",") != c.hallucinated {
			t.Errorf("CheckFields(%s) = %+v, want passed=%v hallucinated=%q", c.in, r, c.pass, c.hallucinated)
		}
	}
}

func TestCanonical(t *testing.T) {
	same := [][2]string{
		{`{"a": 1, "b": [1.0, "x"]}`, `{"b":[1e0,"x"],"a":1}`},
		{`{"a": 1, "a": 2}`, `{"a": 2}`},
		{`{"s": "\u00e9<>&"}`, `{"s": "é<>&"}`},
		{`100000000000000000000`, `1e20`},
	}
	for _, p := range same {
		a, _ := ParsePython(p[0])
		b, _ := ParsePython(p[1])
		if Canonical(a) != Canonical(b) {
			t.Errorf("Canonical(%s) = %s != Canonical(%s) = %s", p[0], Canonical(a), p[1], Canonical(b))
		}
	}
	diff := [][2]string{{`{"a": 1}`, `{"a": "1"}`}, {`[1, 2]`, `[2, 1]`}, {`{"a": null}`, `{}`}, {`0.1`, `0.10000001`}}
	for _, p := range diff {
		a, _ := ParsePython(p[0])
		b, _ := ParsePython(p[1])
		if Canonical(a) == Canonical(b) {
			t.Errorf("Canonical(%s) == Canonical(%s) = %s, want different", p[0], p[1], Canonical(a))
		}
	}
}

func TestValidStages(t *testing.T) {
	cases := []struct {
		in   string
		want bool
	}{
		{`{"type": "find", "filter": {}}`, true},
		{`{"type": "aggregate", "pipeline": [{"$match": {}}, {"$setWindowFields": {}}]}`, true},
		{`{"type": "aggregate", "pipeline": [{"$filter": {}}]}`, false},
		{`{"type": "aggregate", "pipeline": [{"$match": {}, "x": 1}]}`, true},
	}
	for _, c := range cases {
		if got := validStages(mustObject(t, c.in)); got != c.want {
			t.Errorf("validStages(%s) = %v, want %v", c.in, got, c.want)
		}
	}
	if !IsMongoStage("$lookup") || IsMongoStage("$sum") {
		t.Error("IsMongoStage: $lookup is a stage, $sum is not")
	}
}
