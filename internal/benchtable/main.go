// Command benchtable reads `go test -bench` output on stdin and prints one
// Markdown table of the comparisons in it (benchload.Compare and
// benchload.CompareBatch): for each benchmark, the baseline's and ours'
// throughput, their ratio, p99 latency, CPU and allocations per operation.
// Benchmarks that report other figures follow in a second table, their
// metrics as reported. The input is copied to stderr as it is read, so a
// long run shows progress. `task bench` pipes every comparison through it:
//
//	go test -run '^$' -bench . -benchtime 1x ./messaging/ | go run ./internal/benchtable
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
)

func main() {
	if err := run(os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "benchtable: %v\n", err)
		os.Exit(1)
	}
}

// run copies in to progress, parses it and writes the tables to out. It
// fails when a benchmark failed (a FAIL line), after printing the tables of
// what did run.
func run(in io.Reader, out, progress io.Writer) error {
	res, err := Parse(io.TeeReader(bufio.NewReader(in), progress))
	if err != nil {
		return err
	}
	if err := Write(out, res); err != nil {
		return err
	}
	if res.Failed {
		return fmt.Errorf("a benchmark or test failed (see the output above)")
	}
	return nil
}
