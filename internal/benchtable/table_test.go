package main

import (
	"bytes"
	"strings"
	"testing"
)

const sample = `goos: linux
goarch: amd64
pkg: github.com/devloop/switchboard/messaging
cpu: AMD EPYC
BenchmarkEcho/inproc/c=16-2         	       1	         0 ns/op	     19.00 base.raw-allocs/op	     31502 base.raw-ops/s	       820.0 base.raw-p99-µs	        10.50 base.raw-cpu-µs/op	      25.00 ours.typed-allocs/op	     28000 ours.typed-ops/s	       900.0 ours.typed-p99-µs	        12.00 ours.typed-cpu-µs/op	         0.8889 ratio-ops/s	         0.9111 ratio-p99
    bench_test.go:42: a log line of a benchmark
BenchmarkUsers/get/deploy/c=128-2   	       1	     7.000 base.echo-allocs/op	     9.000 base.echo-cpu-client-µs/op	     0 base.echo-cpu-users-µs/op	     9.000 base.echo-cpu-µs/op	     80000 base.echo-ops/s	     26.00 ours.get-allocs/op	     20.00 ours.get-cpu-client-µs/op	     15.50 ours.get-cpu-users-µs/op	     35.50 ours.get-cpu-µs/op	     40000 ours.get-ops/s	     0.5000 ratio-ops/s
BenchmarkConsume/workers=8-2        	       1	         0 ns/op	     50000 base.raw-ops/s	     45000 ours.runtime-ops/s	         0.9000 ratio-ops/s	     3.000 base.raw-allocs/op	     9.000 ours.runtime-allocs/op	     2.000 recreated
BenchmarkStart-2                    	      10	   25000000 ns/op	      1024 B/op	        12 allocs/op
--- FAIL: BenchmarkBroken
PASS
`

func TestParseReadsComparisonsAndOtherRows(t *testing.T) {
	res, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 4 {
		t.Fatalf("got %d rows, want 4: %+v", len(res.Rows), res.Rows)
	}
	echo := res.Rows[0]
	if echo.Name != "BenchmarkEcho/inproc/c=16" || echo.Pkg != "github.com/devloop/switchboard/messaging" {
		t.Errorf("got name %q pkg %q", echo.Name, echo.Pkg)
	}
	if got := echo.Values["ours.typed-ops/s"]; got != 28000 {
		t.Errorf("ours ops/s = %v, want 28000", got)
	}
	if c, ok := echo.Comparison(); !ok || c.Base != "raw" || c.Ours != "typed" {
		t.Errorf("Comparison() = %+v, %v; want raw → typed", c, ok)
	}
	if _, ok := res.Rows[3].Comparison(); ok {
		t.Errorf("BenchmarkStart taken for a comparison")
	}
	if !res.Failed {
		t.Errorf("a --- FAIL line did not mark the results failed")
	}
}

func TestWritePrintsOneTableOfRatios(t *testing.T) {
	res, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Write(&out, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| BenchmarkEcho/inproc/c=16 | raw → typed | 31,502 | 28,000 | 0.89× | 820 / 900 | 0.91× | 10.5 / 12.0 | 19.0 / 25.0 |",
		// A batch has no latencies.
		"| BenchmarkConsume/workers=8 | raw → runtime | 50,000 | 45,000 | 0.90× | – / – | – | – / – | 3.00 / 9.00 |",
		"| BenchmarkStart | 25000000 ns/op, 1024 B/op, 12.0 allocs/op |",
		// CPU by process, for the comparisons that report it.
		"| benchmark | process | CPU µs/op (base / ours) |",
		"| BenchmarkUsers/get/deploy/c=128 | client | 9.00 / 20.0 |",
		"| BenchmarkUsers/get/deploy/c=128 | users | 0.00 / 15.5 |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks\n%s\ngot:\n%s", want, out.String())
		}
	}
}

func TestRunFailsAfterPrintingWhenABenchmarkFailed(t *testing.T) {
	var out, progress bytes.Buffer
	err := run(strings.NewReader(sample), &out, &progress)
	if err == nil {
		t.Fatal("run succeeded on output with a failure")
	}
	if !strings.Contains(out.String(), "BenchmarkEcho/inproc/c=16") || progress.String() != sample {
		t.Errorf("tables or progress missing:\n%s", out.String())
	}
}
