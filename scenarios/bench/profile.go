package bench

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/google/pprof/profile"
)

// profileTop is how many functions a profile summary names by flat and by
// cumulative share.
const profileTop = 10

// maxFunctionName clips the function names of a profile summary, so that
// a summary stays far below what the host accepts in Result.Log.
const maxFunctionName = 160

// profileSummary merges the CPU profiles at paths, one per server process,
// and returns log lines: the samples and CPU time they hold, then the top
// functions by flat share (samples where the function itself ran) and by
// cumulative share (samples with the function anywhere on the stack), in
// percent of all samples.
func profileSummary(paths []string, top int) ([]string, error) {
	var ps []*profile.Profile
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("profile: %w", err)
		}
		p, err := profile.Parse(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("profile %s: %w", path, err)
		}
		ps = append(ps, p)
	}
	if len(ps) == 0 {
		return nil, nil
	}
	p, err := profile.Merge(ps)
	if err != nil {
		return nil, fmt.Errorf("merge profiles: %w", err)
	}
	return summarizeProfile(p, len(paths), top), nil
}

// funcShare is one function's part of a profile's samples.
type funcShare struct {
	name            string
	flat, cum       int64
	flatPct, cumPct float64
}

// summarizeProfile renders p as profileSummary describes.
func summarizeProfile(p *profile.Profile, processes, top int) []string {
	// Go's CPU profiles carry two values per sample: how many times the
	// stack was caught ("samples") and the CPU time that stands for.
	vi, ni := len(p.SampleType)-1, -1
	for i, st := range p.SampleType {
		switch st.Type {
		case "cpu":
			vi = i
		case "samples":
			ni = i
		}
	}
	if vi < 0 {
		return []string{"profile: no sample values"}
	}
	byName := map[string]*funcShare{}
	share := func(name string) *funcShare {
		f := byName[name]
		if f == nil {
			f = &funcShare{name: name}
			byName[name] = f
		}
		return f
	}
	var total, samples int64
	for _, s := range p.Sample {
		v := s.Value[vi]
		total += v
		if ni >= 0 {
			samples += s.Value[ni]
		} else {
			samples++
		}
		seen := map[string]bool{}
		for i, loc := range s.Location {
			names := locationNames(loc)
			if i == 0 && len(names) > 0 {
				// The first line of the leaf location is the innermost
				// (possibly inlined) function: the one that ran.
				share(names[0]).flat += v
			}
			for _, n := range names {
				if !seen[n] {
					seen[n] = true
					share(n).cum += v
				}
			}
		}
	}
	unit := time.Duration(1)
	if p.SampleType[vi].Unit != "nanoseconds" {
		unit = 0
	}
	head := fmt.Sprintf("profile: %d server processes, %d samples", processes, samples)
	if unit != 0 {
		head += fmt.Sprintf(", %.2f s of server CPU", (time.Duration(total) * unit).Seconds())
	}
	if p.DurationNanos > 0 {
		head += fmt.Sprintf(" in %.2f s of server lifetime", time.Duration(p.DurationNanos).Seconds())
	}
	lines := []string{head}
	if total <= 0 {
		return lines
	}
	all := make([]*funcShare, 0, len(byName))
	for _, f := range byName {
		f.flatPct = 100 * float64(f.flat) / float64(total)
		f.cumPct = 100 * float64(f.cum) / float64(total)
		all = append(all, f)
	}
	ranked := func(key func(*funcShare) int64) []*funcShare {
		s := slices.Clone(all)
		slices.SortFunc(s, func(a, b *funcShare) int {
			return cmp.Or(cmp.Compare(key(b), key(a)), cmp.Compare(a.name, b.name))
		})
		return s[:min(top, len(s))]
	}
	for _, f := range ranked(func(f *funcShare) int64 { return f.flat }) {
		if f.flat > 0 {
			lines = append(lines, fmt.Sprintf("profile: %5.1f%% flat (%5.1f%% cum) %s", f.flatPct, f.cumPct, clipName(f.name)))
		}
	}
	for _, f := range ranked(func(f *funcShare) int64 { return f.cum }) {
		lines = append(lines, fmt.Sprintf("profile: %5.1f%% cum (%5.1f%% flat) %s", f.cumPct, f.flatPct, clipName(f.name)))
	}
	return lines
}

// locationNames returns the functions at loc, innermost first; the
// address when the profile has no symbols for it.
func locationNames(loc *profile.Location) []string {
	if len(loc.Line) == 0 {
		return []string{fmt.Sprintf("0x%x", loc.Address)}
	}
	names := make([]string, 0, len(loc.Line))
	for _, l := range loc.Line {
		if l.Function != nil {
			names = append(names, l.Function.Name)
		}
	}
	return names
}

func clipName(s string) string {
	if len(s) <= maxFunctionName {
		return s
	}
	return s[:maxFunctionName] + "…"
}
