package main

import "github.com/urfave/cli/v2"

func scoreCommand() *cli.Command {
	return &cli.Command{
		Name:  "score",
		Usage: "(not implemented yet)",
		Action: func(c *cli.Context) error {
			return notYet("score", "this command has not landed")
		},
	}
}
