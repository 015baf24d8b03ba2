package data

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPromptsMatchPythonReference renders every example of the shared data set and compares
// the SHA-256 of prompt+completion with data/testdata/prompt_sha256.txt, written by
// scripts/fixtures/render_prompts.py (the original's rendering, in Python).
func TestPromptsMatchPythonReference(t *testing.T) {
	f, err := os.Open("testdata/prompt_sha256.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Fields(sc.Text())
		if len(parts) != 3 {
			t.Fatalf("bad fixture line %q", sc.Text())
		}
		want[parts[0]+" "+parts[1]] = parts[2]
	}
	checked := 0
	for _, split := range []string{"train", "eval", "held_out"} {
		exs, err := ReadExamples(filepath.Join(sharedData, split+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		for i, ex := range exs {
			key := fmt.Sprintf("%s %d", split, i)
			c, err := Completion(ex)
			if err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			sum := sha256.Sum256([]byte(Prompt(ex) + c))
			got := hex.EncodeToString(sum[:])[:32]
			if got != want[key] {
				t.Errorf("%s: prompt+completion hash %s, Python reference %s\n%s%s", key, got, want[key], Prompt(ex), c)
				if t.Failed() && checked > 3 {
					t.FailNow()
				}
			}
			checked++
		}
	}
	if checked != len(want) || checked != 2138 {
		t.Errorf("checked %d examples, fixture has %d, data set has 2138", checked, len(want))
	}
}

func TestPromptLiteral(t *testing.T) {
	const system = "<|im_start|>system\nYou are a MongoDB query generator. Given a collection schema, a list of allowed operators, and a natural language intent, produce a valid MongoDB query as JSON. The output must be a JSON object with a 'type' field ('aggregate' or 'find') and the corresponding query body. If the intent references fields not in the schema, respond with {\"error\": \"<reason>\"}. Use only the allowed operators.<|im_end|>\n"
	cases := []struct {
		split            string
		prompt, complete string
	}{
		{"train",
			system + "<|im_start|>user\nCollection: posts\nFields:\n  - post_id (string, identifier): Post ID\n  - author_id (string, identifier): Author reference\n  - likes (int, measure): Number of likes\n  - published_at (date, timestamp): Publication timestamp\n  - topic (string, category): Post topic\n  - content (string, text): Post body text\n  - is_pinned (bool, boolean): Whether post is pinned\n\nAllowed stage operators: $match, $group, $sort, $limit, $skip, $project, $unwind, $lookup, $addFields, $count, $bucket, $bucketAuto, $facet, $replaceRoot, $sortByCount, $sample, $set, $unset\nAllowed expression operators: $sum, $avg, $min, $max, $first, $last, $push, $addToSet, $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $and, $not, $nor, $exists, $type, $regex, $year, $month, $dayOfMonth, $dayOfWeek, $add, $subtract, $multiply, $divide, $concat, $substr, $toUpper, $cond, $ifNull, $switch, $size, $slice, $filter, $map, $dateToString, $toDate\n\nIntent: List posts that have topic set to sample_topic<|im_end|>\n<|im_start|>assistant\n",
			`{"type": "find", "filter": {"topic": "sample_topic"}}<|im_end|>`},
		{"held_out",
			system + "<|im_start|>user\nCollection: museum_exhibits\nFields:\n  - exhibit_id (string, identifier): Exhibit identifier\n  - title (string, text): Exhibit title\n  - visitor_count (int, measure): Total visitors\n  - opened_on (date, timestamp): Opening date\n  - wing (string, category): Museum wing\n  - medium (string, enum): Art medium [values: painting, sculpture, photography, installation, mixed_media]\n  - is_permanent (bool, boolean): Permanent exhibit\n\nAllowed stage operators: $match, $group, $sort, $limit, $skip, $project, $unwind, $lookup, $addFields, $count, $bucket, $bucketAuto, $facet, $replaceRoot, $sortByCount, $sample, $set, $unset\nAllowed expression operators: $sum, $avg, $min, $max, $first, $last, $push, $addToSet, $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $and, $or, $not, $nor, $exists, $type, $regex, $year, $month, $dayOfMonth, $dayOfWeek, $add, $subtract, $multiply, $divide, $concat, $substr, $toLower, $toUpper, $cond, $ifNull, $switch, $size, $slice, $filter, $map, $dateToString, $toDate\n\nIntent: Show all museum_exhibits where wing is sample_wing<|im_end|>\n<|im_start|>assistant\n",
			`{"type": "find", "filter": {"wing": "sample_wing"}}<|im_end|>`},
	}
	for _, c := range cases {
		exs, err := ReadExamples(filepath.Join(sharedData, c.split+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		if got := Prompt(exs[0]); got != c.prompt {
			t.Errorf("%s[0] prompt:\n got %q\nwant %q", c.split, got, c.prompt)
		}
		got, err := Completion(exs[0])
		if err != nil || got != c.complete {
			t.Errorf("%s[0] completion: got %q, %v; want %q", c.split, got, err, c.complete)
		}
	}
}

func TestUserMessageEmptyDescriptionAndEnum(t *testing.T) {
	ex := Example{
		Schema: Schema{Collection: "c", Fields: []Field{
			{Name: "a", Type: "string", Role: "enum", EnumValues: []string{"x", "y"}},
			{Name: "b", Type: "int", Role: "measure"},
		}},
		AllowedOps: AllowedOps{StageOperators: []string{"$match"}},
		Intent:     "Find <things> & more",
	}
	want := "Collection: c\nFields:\n  - a (string, enum) [values: x, y]\n  - b (int, measure)\n\n" +
		"Allowed stage operators: $match\nAllowed expression operators: \n\nIntent: Find <things> & more"
	if got := UserMessage(ex); got != want {
		t.Errorf("UserMessage:\n got %q\nwant %q", got, want)
	}
}
