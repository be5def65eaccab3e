// Command ironcast is the ironcast server and its command-line client in
// one binary; see package cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/ironcast/ironcast/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx)
	stop()
	os.Exit(code)
}
