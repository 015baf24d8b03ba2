package main

import "github.com/urfave/cli/v2"

func forwardCommand() *cli.Command {
	return &cli.Command{
		Name:  "forward",
		Usage: "(not implemented yet)",
		Action: func(c *cli.Context) error {
			return notYet("forward", "this command has not landed")
		},
	}
}
