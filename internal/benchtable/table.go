package main

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/devloop/switchboard/internal/benchload"
)

// Row is one benchmark result line.
type Row struct {
	Pkg  string // the package, from the preceding "pkg:" line
	Name string // without the -GOMAXPROCS suffix
	// Metrics in the order reported, by unit.
	Units  []string
	Values map[string]float64
}

// Comparison is a Row of benchload.Compare: baseline and ours.
type Comparison struct {
	Base, Ours string // the sides' names
}

// Results is what Parse read.
type Results struct {
	Rows   []Row
	Failed bool // a FAIL or panic line was seen
}

var procSuffix = regexp.MustCompile(`-\d+$`)

// Parse reads `go test -bench` output. Lines other than results, "pkg:"
// lines and failures are ignored.
func Parse(r io.Reader) (Results, error) {
	var res Results
	pkg := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "pkg: "):
			pkg = strings.TrimPrefix(line, "pkg: ")
			continue
		case strings.HasPrefix(line, "FAIL") || strings.HasPrefix(line, "--- FAIL") || strings.HasPrefix(line, "panic:"):
			res.Failed = true
			continue
		case !strings.HasPrefix(line, "Benchmark"):
			continue
		}
		f := strings.Fields(line)
		// name, iterations, then value-unit pairs.
		if len(f) < 4 || len(f)%2 != 0 {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue // a benchmark's log line, not a result
		}
		row := Row{Pkg: pkg, Name: procSuffix.ReplaceAllString(f[0], ""), Values: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return res, fmt.Errorf("%s: metric %q: %w", row.Name, f[i], err)
			}
			unit := f[i+1]
			if _, seen := row.Values[unit]; !seen {
				row.Units = append(row.Units, unit)
			}
			row.Values[unit] = v
		}
		res.Rows = append(res.Rows, row)
	}
	return res, sc.Err()
}

// Comparison returns the sides of a row of benchload.Compare, or false for
// another kind of row.
func (r Row) Comparison() (Comparison, bool) {
	var c Comparison
	for _, u := range r.Units {
		if name, ok := strings.CutSuffix(u, "-ops/s"); ok {
			if base, ok := strings.CutPrefix(name, benchload.BasePrefix); ok {
				c.Base = base
			}
			if ours, ok := strings.CutPrefix(name, benchload.OursPrefix); ok {
				c.Ours = ours
			}
		}
	}
	return c, c.Base != "" && c.Ours != ""
}

// metric is the value of a side's metric ("" when not reported).
func (r Row) metric(prefix, name, metric string, format func(float64) string) string {
	v, ok := r.Values[prefix+name+"-"+metric]
	if !ok {
		return "–"
	}
	return format(v)
}

func (r Row) ratio(unit string) string {
	v, ok := r.Values[unit]
	if !ok {
		return "–"
	}
	return fmt.Sprintf("%.2f×", v)
}

// Write prints the comparisons, then the other rows.
func Write(w io.Writer, res Results) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "| benchmark | baseline → ours | baseline ops/s | ours ops/s | ratio ops/s | p99 µs (base / ours) | ratio p99 | CPU µs/op (base / ours) | allocs/op (base / ours) |")
	fmt.Fprintln(bw, "|---|---|---:|---:|---:|---:|---:|---:|---:|")
	var others []Row
	for _, r := range res.Rows {
		c, ok := r.Comparison()
		if !ok {
			others = append(others, r)
			continue
		}
		b, o := benchload.BasePrefix, benchload.OursPrefix
		fmt.Fprintf(bw, "| %s | %s → %s | %s | %s | %s | %s / %s | %s | %s / %s | %s / %s |\n",
			r.Name, c.Base, c.Ours,
			r.metric(b, c.Base, "ops/s", rate), r.metric(o, c.Ours, "ops/s", rate), r.ratio("ratio-ops/s"),
			r.metric(b, c.Base, "p99-µs", num), r.metric(o, c.Ours, "p99-µs", num), r.ratio("ratio-p99"),
			r.metric(b, c.Base, "cpu-µs/op", num), r.metric(o, c.Ours, "cpu-µs/op", num),
			r.metric(b, c.Base, "allocs/op", num), r.metric(o, c.Ours, "allocs/op", num))
	}
	writeParts(bw, res)
	if len(others) > 0 {
		fmt.Fprintln(bw)
		fmt.Fprintln(bw, "| benchmark | figures |")
		fmt.Fprintln(bw, "|---|---|")
		for _, r := range others {
			var parts []string
			for _, u := range r.Units {
				if u == "ns/op" && r.Values[u] == 0 {
					continue // Compare-style benchmarks zero it
				}
				parts = append(parts, num(r.Values[u])+" "+u)
			}
			fmt.Fprintf(bw, "| %s | %s |\n", r.Name, strings.Join(parts, ", "))
		}
	}
	return bw.Flush()
}

// parts returns the processes whose CPU a comparison reported apart
// (benchload.CompareParts: "base.X-cpu-<part>-µs/op"), in report order.
func (r Row) parts(c Comparison) []string {
	var parts []string
	prefix := benchload.BasePrefix + c.Base + "-cpu-"
	for _, u := range r.Units {
		if part, ok := strings.CutPrefix(u, prefix); ok {
			if part, ok = strings.CutSuffix(part, "-µs/op"); ok && part != "" {
				parts = append(parts, part)
			}
		}
	}
	return parts
}

// writeParts prints, for the comparisons that reported CPU by process, a
// table of it: where each side's CPU per call goes.
func writeParts(w io.Writer, res Results) {
	header := false
	for _, r := range res.Rows {
		c, ok := r.Comparison()
		if !ok {
			continue
		}
		for _, part := range r.parts(c) {
			if !header {
				fmt.Fprintln(w)
				fmt.Fprintln(w, "| benchmark | process | CPU µs/op (base / ours) |")
				fmt.Fprintln(w, "|---|---|---:|")
				header = true
			}
			fmt.Fprintf(w, "| %s | %s | %s / %s |\n", r.Name, part,
				r.metric(benchload.BasePrefix, c.Base, "cpu-"+part+"-µs/op", num),
				r.metric(benchload.OursPrefix, c.Ours, "cpu-"+part+"-µs/op", num))
		}
	}
}

// rate formats a throughput: 12345.6 is "12,346".
func rate(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// num formats a figure with three significant digits, at most.
func num(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}
