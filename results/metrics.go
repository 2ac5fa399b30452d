package results

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Metric names say what their values can be (package contract names
// them; these are the conventions it follows). A figure that breaks them
// is no measurement: a reader that took it would judge a run on a
// number the guest never saw, so ReadFile refuses the file and the agent
// drops the metric before it is sent.
//
//   - MB/s, ratios of MB/s and counts per GiB cannot be negative:
//     mbps_median, native_mbps, ratio_native, passthrough_ratio,
//     cpu_s_per_gib, and so on.
//   - X_min and X_max are the range of the runs behind X (or X_median):
//     X_min ≤ X ≤ X_max.
//
// Any other metric may take any finite value: a difference or a delta
// can be negative, and a newer agent may record what this one does not
// know.
var nonNegative = struct{ prefixes, suffixes []string }{
	prefixes: []string{"mbps_", "ratio_"},
	suffixes: []string{"_mbps", "_ratio", "_per_gib"},
}

// NonNegative reports whether the metric called name is a rate, a ratio
// of rates or a count, which cannot be negative.
func NonNegative(name string) bool {
	for _, p := range nonNegative.prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	for _, s := range nonNegative.suffixes {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// BadMetrics says which of metrics no measurement could have given, and
// why: a value that is not a finite number, a rate, ratio or count below
// zero, a range whose minimum exceeds its maximum, or a median outside
// its range. It returns nil when every metric is plausible.
func BadMetrics(metrics map[string]float64) map[string]string {
	var bad map[string]string
	say := func(name, why string) {
		if bad == nil {
			bad = map[string]string{}
		}
		if _, said := bad[name]; !said {
			bad[name] = why
		}
	}
	for name, v := range metrics {
		switch {
		case math.IsNaN(v) || math.IsInf(v, 0):
			say(name, "not a finite number")
		case v < 0 && NonNegative(name):
			say(name, fmt.Sprintf("%s is negative, and a rate, ratio or count cannot be", num(v)))
		}
	}
	for name, lo := range metrics {
		base, ok := strings.CutSuffix(name, "_min")
		if !ok {
			continue
		}
		hi, ok := metrics[base+"_max"]
		if !ok || bad[name] != "" || bad[base+"_max"] != "" {
			continue
		}
		if lo > hi {
			say(name, fmt.Sprintf("%s is above %.64q, %s", num(lo), base+"_max", num(hi)))
			continue
		}
		mid, ok := base, false
		for _, m := range []string{base, base + "_median"} {
			if _, ok = metrics[m]; ok {
				mid = m
				break
			}
		}
		if v := metrics[mid]; ok && bad[mid] == "" && (v < lo || v > hi) {
			say(mid, fmt.Sprintf("%s is outside its range %.64q–%.64q, %s–%s", num(v), name, base+"_max", num(lo), num(hi)))
		}
	}
	return bad
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
