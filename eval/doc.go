// Package eval scores model outputs the way the original Python text_to_mongo
// harness does, so that t2m's numbers are comparable with published ones.
//
// A raw model output goes through JSON extraction (brace-depth matching from the
// first '{') and then four layers:
//
//  1. Syntax: a JSON object with "type" in {find, aggregate}; an aggregate has a
//     "pipeline" list of objects with exactly one '$'-key each; a find has a
//     "filter" object.
//  2. Operators: every '$'-key (except Extended JSON wrappers such as $date) is in
//     the example's allowed operators, and none is on the always-unsafe list.
//  3. Fields: every field referenced (keys and "$path" strings, with $group,
//     $bucket and $bucketAuto output aliases skipped) exists in the schema.
//  4. Generalization: per-layer pass rates on train-schema versus held-out-schema
//     examples; a gap above 5 points flags overfitting.
//
// JSON is parsed with Python's json.loads semantics (NaN and Infinity accepted,
// duplicate keys last-wins at the first key's position), because the verdicts must
// equal the original's. Extra columns that never change the four layers: exact
// match against the gold output, valid MongoDB stage names, and overall with
// refusals ({"error": ...} on a negative example counts as correct).
//
// The package also writes the per-run reports (<split>_predictions.jsonl and
// <split>_report.json, atomically) and builds the comparison table across runs.
//
// eval depends only on data/, internal/atomicfile and the standard library. It must not depend on
// model/, gpu/, train/ (or lora/, quant/): scoring saved predictions needs no model.
package eval
