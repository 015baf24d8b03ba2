// Command t2m fine-tunes Qwen2 models with QLoRA to translate natural-language
// requests plus a MongoDB collection schema into MongoDB queries, and measures
// how well they do it.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

func main() {
	app := newApp()
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "t2m:", err)
		os.Exit(1)
	}
}

// invocation is the command line being run: the program as invoked (os.Args[0]) and the arguments the
// app was run with (os.Args[1:] in the t2m binary); set by the app's Before.
var invocation []string

// commandLine is the command line for a report's provenance: invocation, or os.Args before the app ran.
func commandLine() []string {
	if invocation == nil {
		return os.Args
	}
	return append([]string(nil), invocation...)
}

// newApp builds the command tree. Each command lives in its own file.
func newApp() *cli.App {
	return &cli.App{
		Name:    "t2m",
		Version: version(),
		Usage:   "QLoRA fine-tuning and evaluation of Qwen2 models for text-to-MongoDB",
		Description: "t2m fine-tunes Qwen2 language models with QLoRA (NF4 base weights, LoRA adapters in the PEFT\n" +
			"format) so they turn a natural-language intent plus a MongoDB collection schema into a MongoDB\n" +
			"query, and scores the result on four layers (syntax, operators, fields, generalization).",
		Commands: []*cli.Command{
			dataCommand(),
			promptCommand(),
			scoreCommand(),
			compareCommand(),
			baselineCommand(),
			trainCommand(),
			evalCommand(),
			forwardCommand(),
			benchCommand(),
			askCommand(),
			mergeCommand(),
			exportCommand(),
		},
		// The command line as the app received it, recorded in reports' provenance.
		Before: func(c *cli.Context) error {
			invocation = append([]string{os.Args[0]}, c.Args().Slice()...)
			return nil
		},
		// Unknown flags and commands print usage and exit non-zero.
		OnUsageError: func(c *cli.Context, err error, isSubcommand bool) error {
			_ = cli.ShowAppHelp(c)
			return fmt.Errorf("usage: %w", err)
		},
	}
}
