package main

import (
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/t2m/t2m/data"
)

func dataCommand() *cli.Command {
	return &cli.Command{
		Name:  "data",
		Usage: "generate the synthetic train/eval/held-out splits (deterministic for a seed)",
		UsageText: "t2m data\n" +
			"t2m data --seed 7 --out /tmp/t2m-data\n" +
			"t2m data --style published --seed 101 --out /tmp/pub",
		Description: "Writes OUT/train.jsonl, OUT/eval.jsonl and OUT/held_out.jsonl in the original JSONL format:\n" +
			"18 training collections over 10 domains (shuffled 90/10 into train and eval) and 3 held-out\n" +
			"collections (museum_exhibits, weather_stations, fleet_vehicles) never seen in training. The same\n" +
			"seed and style give byte-identical files; each file is written to a temporary file and renamed\n" +
			"into place.\n\n" +
			"--style t2m (the default): t2m's own phrasings and conventions: varied wordings and date formats,\n" +
			"comparisons, $nin, $or, regex, distinct and $bucket queries, about 15% negatives whose intent names a\n" +
			"field the schema lacks, and a random subset of allowed operators that keeps the ones the query uses.\n\n" +
			"--style published: the published data set's intent templates and output conventions on the same\n" +
			"schemas: 34 fixed templates over 12 kinds (e.g. \"Show all C where F is V\", \"Top N C by F\",\n" +
			"\"Get F from T ranging D to D\"), sample_<field> and some_value placeholders, $exists with $ne null,\n" +
			"$count \"total\", accumulator keys total/average/minimum/maximum, renamed copies (a collection name\n" +
			"containing a renamed field changes with it), ~1.7% negatives \"Show all C where X is greater than 100\",\n" +
			"the full operator lists (a fifth of the examples lack two unused ones), ~1,544/171/423 examples.",
		Flags: []cli.Flag{
			&cli.Uint64Flag{Name: "seed", Usage: "random seed; the same seed gives the same bytes", Value: 42},
			&cli.StringFlag{Name: "out", Usage: "output directory (created if missing)", Value: "data"},
			&cli.StringFlag{Name: "style", Usage: "generation style: t2m (own phrasings) or published (the published data set's templates and conventions)", Value: data.StyleT2M},
		},
		Action: func(c *cli.Context) error {
			train, eval, held, err := data.GenerateStyle(c.Uint64("seed"), c.String("style"))
			if err != nil {
				return fmt.Errorf("data: %w", err)
			}
			out := c.String("out")
			if err := data.WriteSplits(out, train, eval, held); err != nil {
				return err
			}
			for _, s := range []struct {
				name string
				n    int
			}{{"train", len(train)}, {"eval", len(eval)}, {"held_out", len(held)}} {
				fmt.Fprintf(c.App.Writer, "wrote %s (%d examples)\n", filepath.Join(out, s.name+".jsonl"), s.n)
			}
			return nil
		},
	}
}
