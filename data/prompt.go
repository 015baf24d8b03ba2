package data

import (
	"fmt"
	"strings"
)

// ChatML markers of Qwen2 chat models.
const (
	ImStart = "<|im_start|>"
	ImEnd   = "<|im_end|>"
)

// SystemPrompt is the system message of every prompt, word for word the original's.
const SystemPrompt = "You are a MongoDB query generator. Given a collection schema, a list of allowed operators, " +
	"and a natural language intent, produce a valid MongoDB query as JSON. The output must be a JSON object " +
	"with a 'type' field ('aggregate' or 'find') and the corresponding query body. If the intent references " +
	"fields not in the schema, respond with {\"error\": \"<reason>\"}. Use only the allowed operators."

// UserMessage renders the user turn: the collection, one line per field, the allowed
// operators and the intent, lines joined with "\n":
//
//	Collection: orders
//	Fields:
//	  - status (string, enum): Order status [values: pending, shipped]
//
//	Allowed stage operators: $match, $group
//	Allowed expression operators: $sum, $eq
//
//	Intent: How many orders are pending?
func UserMessage(ex Example) string {
	var lines []string
	lines = append(lines, "Collection: "+ex.Schema.Collection, "Fields:")
	for _, f := range ex.Schema.Fields {
		line := fmt.Sprintf("  - %s (%s, %s)", f.Name, f.Type, f.Role)
		if f.Description != "" {
			line += ": " + f.Description
		}
		if len(f.EnumValues) > 0 {
			line += " [values: " + strings.Join(f.EnumValues, ", ") + "]"
		}
		lines = append(lines, line)
	}
	lines = append(lines, "",
		"Allowed stage operators: "+strings.Join(ex.AllowedOps.StageOperators, ", "),
		"Allowed expression operators: "+strings.Join(ex.AllowedOps.ExpressionOperators, ", "),
		"",
		"Intent: "+ex.Intent)
	return strings.Join(lines, "\n")
}

// Prompt renders the ChatML prompt the model sees, up to and including the generation
// prompt, as Qwen2's chat template does with add_generation_prompt=True:
//
//	<|im_start|>system\n{SystemPrompt}<|im_end|>\n<|im_start|>user\n{UserMessage}<|im_end|>\n<|im_start|>assistant\n
func Prompt(ex Example) string {
	return ImStart + "system\n" + SystemPrompt + ImEnd + "\n" +
		ImStart + "user\n" + UserMessage(ex) + ImEnd + "\n" +
		ImStart + "assistant\n"
}

// Completion renders the training target that follows Prompt: the gold output as Python's
// json.dumps(output, ensure_ascii=False) writes it (see PythonJSON), then "<|im_end|>".
func Completion(ex Example) (string, error) {
	s, err := PythonJSON(ex.Output)
	if err != nil {
		return "", fmt.Errorf("completion of %s example %q: %w", ex.Schema.Collection, ex.Intent, err)
	}
	return s + ImEnd, nil
}
