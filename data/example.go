package data

import "encoding/json"

// Field is one field of a collection schema.
type Field struct {
	Name        string   `json:"name"`
	Type        string   `json:"type"`
	Role        string   `json:"role"`
	Description string   `json:"description"`
	EnumValues  []string `json:"enum_values,omitempty"`
}

// Schema describes a MongoDB collection.
type Schema struct {
	Collection string  `json:"collection"`
	Domain     string  `json:"domain"`
	Fields     []Field `json:"fields"`
}

// AllowedOps lists the operators a query may use.
type AllowedOps struct {
	StageOperators      []string `json:"stage_operators"`
	ExpressionOperators []string `json:"expression_operators"`
}

// Example is one line of a split file (train/eval/held_out JSONL).
//
// Output is kept as the raw JSON bytes of the file so that key order and the literal
// text of numbers survive; render it with PythonJSON for prompts.
type Example struct {
	Schema     Schema          `json:"schema"`
	AllowedOps AllowedOps      `json:"allowed_ops"`
	Intent     string          `json:"intent"`
	Output     json.RawMessage `json:"output"`
	IsNegative bool            `json:"is_negative"`
}
