// Package merge joins runs made on different machines — the shards of a
// nightly, one kernel each — into one run, as if one invocation had booted
// every kernel (Merge), and writes the merged folder (Write): results.json,
// junit.xml, report.html and the shards' console logs; Files does all
// three for runs on disk, which results.ReadFile reads. Printing is the
// command's.
//
// A shard came from another machine, so nothing in it is trusted to be
// consistent with the others: two shards that both claim a kernel, or that
// speak different schemas, are errors rather than a silent choice, and a
// console log is named only by a plain file name the merged folder can hold.
//
// It imports results and harness/report only.
package merge

import (
	"cmp"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fusematrix/fusematrix/results"
)

// Shard is one run to merge.
type Shard struct {
	// Path names the shard in errors (its results.json).
	Path string
	Run  *results.Run
}

// Merge joins shards into one run. Kernels keep their results; each kernel
// whose shard ran on a host other than the merged run's first records that
// host, so that throughput is compared between like machines only. The
// merged run starts with the earliest shard and finishes with the latest,
// and its kernels are in natural order of their names (6.1 before 6.12
// before 7.0), whatever order the shards came in.
func Merge(shards []Shard) (*results.Run, error) {
	if len(shards) == 0 {
		return nil, errors.New("merge: no runs given")
	}
	out := &results.Run{Schema: shards[0].Run.Schema, Host: shards[0].Run.Host}
	owner := map[string]string{}
	var errs []error
	for _, s := range shards {
		r := s.Run
		if r.Schema != out.Schema {
			errs = append(errs, fmt.Errorf("%s: schema %d, but %s has schema %d", s.Path, r.Schema, shards[0].Path, out.Schema))
			continue
		}
		if len(r.Kernels) == 0 {
			errs = append(errs, fmt.Errorf("%s: no kernels: an interrupted or empty run", s.Path))
			continue
		}
		if out.Started.IsZero() || (!r.Started.IsZero() && r.Started.Before(out.Started)) {
			out.Started = r.Started
		}
		if r.Finished.After(out.Finished) {
			out.Finished = r.Finished
		}
		for _, k := range r.Kernels {
			if first, dup := owner[k.Name]; dup {
				errs = append(errs, fmt.Errorf("kernel %.80q is in both %s and %s: shards must not overlap", k.Name, first, s.Path))
				continue
			}
			owner[k.Name] = s.Path
			if k.Host == nil && r.Host != out.Host {
				h := r.Host
				k.Host = &h
			}
			out.Kernels = append(out.Kernels, k)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	slices.SortStableFunc(out.Kernels, func(a, b results.Kernel) int { return Natural(a.Name, b.Name) })
	return out, nil
}

// Natural orders strings with their runs of digits compared as numbers, so
// that debian:6.9 comes before debian:6.12.
func Natural(a, b string) int {
	for a != "" && b != "" {
		da, db := digits(a), digits(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := cmp.Compare(len(na), len(nb)); c != 0 {
				return c
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digits(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

// ConsoleName says whether name, a console log named by a shard, is a
// plain file name in the shard's folder (nothing a shard says may reach
// another folder), and returns it.
func ConsoleName(name string) (string, bool) {
	if name == "" || name == "." || name != filepath.Base(name) || !filepath.IsLocal(name) || strings.ContainsAny(name, `/\`) {
		return "", false
	}
	return name, true
}
