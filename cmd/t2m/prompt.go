package main

import "github.com/urfave/cli/v2"

func promptCommand() *cli.Command {
	return &cli.Command{
		Name:  "prompt",
		Usage: "(not implemented yet)",
		Action: func(c *cli.Context) error {
			return notYet("prompt", "this command has not landed")
		},
	}
}
