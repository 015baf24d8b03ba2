package main

import "github.com/urfave/cli/v2"

func compareCommand() *cli.Command {
	return &cli.Command{
		Name:  "compare",
		Usage: "(not implemented yet)",
		Action: func(c *cli.Context) error {
			return notYet("compare", "this command has not landed")
		},
	}
}
