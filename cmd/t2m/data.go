package main

import "github.com/urfave/cli/v2"

func dataCommand() *cli.Command {
	return &cli.Command{
		Name:  "data",
		Usage: "(not implemented yet)",
		Action: func(c *cli.Context) error {
			return notYet("data", "this command has not landed")
		},
	}
}
