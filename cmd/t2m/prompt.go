package main

import (
	"fmt"
	"io"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/t2m/t2m/data"
	"github.com/t2m/t2m/tokenizer"
)

// promptTokenizer is what `t2m prompt --tokenizer` needs of a tokenizer.
type promptTokenizer interface {
	data.Encoder
	Decode(ids []int) string
}

// loadPromptTokenizer reads an HF tokenizer.json.
func loadPromptTokenizer(path string) (promptTokenizer, error) {
	t, err := tokenizer.Load(path)
	if err != nil {
		return nil, fmt.Errorf("--tokenizer: %w", err)
	}
	return t, nil
}

func promptCommand() *cli.Command {
	return &cli.Command{
		Name:  "prompt",
		Usage: "print the ChatML prompt and completion of one example (and its token ids with --tokenizer)",
		UsageText: "t2m prompt --split data/train.jsonl --index 0\n" +
			"t2m prompt --split data/eval.jsonl --index 12 --tokenizer ../shared/tokenizers/qwen2.5/tokenizer.json",
		Description: "Renders example N of a split file exactly as training and evaluation see it: the prompt\n" +
			"(system + user turns and the assistant generation prompt) and the completion (the gold output\n" +
			"as Python's json.dumps writes it, then <|im_end|>). With --tokenizer it also lists every token\n" +
			"with its position, id and whether it carries loss after truncation to --max-len.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "split", Usage: "split file (JSONL, one example per line)", Required: true},
			&cli.IntFlag{Name: "index", Usage: "0-based example number in the split file", Value: 0},
			&cli.StringFlag{Name: "tokenizer", Usage: "HF tokenizer.json; when set, also print token ids and loss positions"},
			&cli.IntFlag{Name: "max-len", Usage: "training sequence length used to show truncation (with --tokenizer)", Value: data.DefaultMaxLen},
		},
		Action: func(c *cli.Context) error {
			exs, err := data.ReadExamples(c.String("split"))
			if err != nil {
				return err
			}
			i := c.Int("index")
			if i < 0 || i >= len(exs) {
				return fmt.Errorf("--index %d: %s has %d examples (valid: 0..%d)", i, c.String("split"), len(exs), len(exs)-1)
			}
			var tok promptTokenizer
			if path := c.String("tokenizer"); path != "" {
				if tok, err = loadPromptTokenizer(path); err != nil {
					return err
				}
			}
			return printPrompt(c.App.Writer, exs, i, tok, c.Int("max-len"))
		},
	}
}

// printPrompt writes the prompt and completion of exs[i], then, with a tokenizer, one line
// per token: position, id, loss flag and the token's text.
func printPrompt(w io.Writer, exs []data.Example, i int, tok promptTokenizer, maxLen int) error {
	ex := exs[i]
	completion, err := data.Completion(ex)
	if err != nil {
		return err
	}
	neg := ""
	if ex.IsNegative {
		neg = ", negative"
	}
	fmt.Fprintf(w, "=== example %d (collection %s%s) — prompt ===\n%s=== completion ===\n%s\n", i, ex.Schema.Collection, neg, data.Prompt(ex), completion)
	if tok == nil {
		return nil
	}
	seqs, st, err := data.Tokenize(tok, exs[i:i+1], maxLen)
	if err != nil {
		return err
	}
	p := len(tok.Encode(data.Prompt(ex)))
	c := len(tok.Encode(completion))
	fmt.Fprintf(w, "=== tokens: prompt %d + completion %d = %d (max-len %d) ===\n", p, c, p+c, maxLen)
	if st.Dropped > 0 {
		fmt.Fprintf(w, "the prompt alone fills max-len: training drops this example\n")
		return nil
	}
	if st.Truncated > 0 {
		fmt.Fprintf(w, "truncated: training keeps %d of %d completion tokens\n", maxLen-p, c)
	}
	s := seqs[0]
	labels := s.Labels()
	fmt.Fprintf(w, "%5s %7s %4s  %s\n", "pos", "id", "loss", "token")
	for t, id := range s.IDs {
		loss := "-"
		if labels[t] != data.IgnoreIndex {
			loss = "yes"
		}
		fmt.Fprintf(w, "%5d %7d %4s  %s\n", t, id, loss, strconv.Quote(tok.Decode([]int{int(id)})))
	}
	fmt.Fprintf(w, "loss on positions %d..%d (%d tokens)\n", s.PromptLen, len(s.IDs)-1, len(s.IDs)-s.PromptLen)
	return nil
}
