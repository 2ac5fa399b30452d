package compare

import (
	"fmt"
	"math"
	"strings"

	"github.com/fusematrix/fusematrix/results"
	"github.com/fusematrix/fusematrix/results/contract"
)

// A benchmark cell's figures drift with the host's load, so a drop counts
// only beyond the noise both runs measured:
//
//   - MB/s: the new cell's [mbps_min, mbps_max] lies wholly below the old
//     one's;
//   - the paired ratio to native: ratio_native fell by more than the
//     threshold, relative to the old ratio, and the new
//     [ratio_native_min, ratio_native_max] lies wholly below the old one's.
//
// A rise by the same rules is a change. Cells whose paired runs were
// disturbed (ratio_native_noisy) in either run are not judged, nor are
// cells of kernels booted with different accelerators or on hosts of
// different CPU models.

// span is a figure with the range of the runs behind it.
type span struct{ mid, lo, hi float64 }

func spanOf(r *results.Result, mid, lo, hi contract.Metric) (span, bool) {
	m, ok1 := mid.Of(r)
	l, ok2 := lo.Of(r)
	h, ok3 := hi.Of(r)
	s := span{m, l, h}
	ok := ok1 && ok2 && ok3 && finite(m) && finite(l) && finite(h) && l <= h
	return s, ok
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// throughput judges one cell that passed in both runs. It returns the
// finding to report, if any, and whether the cell was judged at all (a
// judged cell without a finding moved within the noise). lost says the
// new cell lost metrics, which findings of their own report.
func (c *comparer) throughput(k *Kernel, o, n *results.Result, lost bool) (*Finding, bool) {
	note := func(why string) *Finding {
		return &Finding{Verdict: Info, Aspect: AspectThroughput, What: "not judged", Old: "-", New: "-", Note: why}
	}
	if oldNoisy, newNoisy := contract.FactRatioNoisy.Of(o) != "", contract.FactRatioNoisy.Of(n) != ""; oldNoisy || newNoisy {
		return note(fmt.Sprintf("%s: the paired runs were disturbed in %s", contract.FactRatioNoisy, which(oldNoisy, newNoisy))), false
	}
	om, okM1 := spanOf(o, contract.MetricMedian, contract.MetricMin, contract.MetricMax)
	nm, okM2 := spanOf(n, contract.MetricMedian, contract.MetricMin, contract.MetricMax)
	or, okR1 := spanOf(o, contract.MetricRatioNative, contract.MetricRatioNativeMin, contract.MetricRatioNativeMax)
	nr, okR2 := spanOf(n, contract.MetricRatioNative, contract.MetricRatioNativeMin, contract.MetricRatioNativeMax)
	mbps, ratio := okM1 && okM2, okR1 && okR2 && or.mid > 0
	switch {
	case !mbps && !ratio && lost:
		return nil, false // the lost metrics say why
	case !mbps && !ratio:
		return note("no MB/s or ratio range in both runs"), false
	}
	k.Cells++

	var down, up []string
	if mbps {
		switch {
		case nm.hi < om.lo:
			down = append(down, fmt.Sprintf("MB/s %s wholly below %s", rangeText(nm, 0), rangeText(om, 0)))
		case nm.lo > om.hi:
			up = append(up, fmt.Sprintf("MB/s %s wholly above %s", rangeText(nm, 0), rangeText(om, 0)))
		}
	}
	if ratio {
		rel := (nr.mid - or.mid) / or.mid
		switch {
		case -rel > c.threshold && nr.hi < or.lo:
			down = append(down, fmt.Sprintf("%s %+.0f%% (threshold %.0f%%), range %s wholly below %s",
				contract.MetricRatioNative, 100*rel, 100*c.threshold, rangeText(nr, 2), rangeText(or, 2)))
		case rel > c.threshold && nr.lo > or.hi:
			up = append(up, fmt.Sprintf("%s %+.0f%% (threshold %.0f%%), range %s wholly above %s",
				contract.MetricRatioNative, 100*rel, 100*c.threshold, rangeText(nr, 2), rangeText(or, 2)))
		}
	}
	f := &Finding{Aspect: AspectThroughput, Old: figures(om, or, mbps, ratio), New: figures(nm, nr, mbps, ratio)}
	switch {
	case len(down) > 0:
		f.Verdict, f.What, f.Note = Regression, "slower", strings.Join(down, "; ")
	case len(up) > 0:
		f.Verdict, f.What, f.Note = Change, "faster", strings.Join(up, "; ")
	default:
		return nil, true
	}
	return f, true
}

// cellsSkipped says why no cell of a kernel can be compared between its
// two runs, "" when they can, and whether the reason is the hosts (each
// kernel of a merged run carries the host of its shard).
func (c *comparer) cellsSkipped(o, n *results.Kernel) (string, bool) {
	om, nm := c.old.HostOf(o).CPUModel, c.new.HostOf(n).CPUModel
	switch {
	case om != "" && nm != "" && om != nm:
		return fmt.Sprintf("the hosts' CPU models differ (%s, then %s)", shown(om, valueWidth), shown(nm, valueWidth)), true
	case o.Accel == "" || n.Accel == "":
		return "the accelerator is unknown", false
	case o.Accel != n.Accel:
		return fmt.Sprintf("accelerators differ (%s, then %s): their figures are not comparable",
			shown(o.Accel, valueWidth), shown(n.Accel, valueWidth)), false
	}
	return "", false
}

// cellsInBoth says whether some benchmark cell passed in both runs.
func cellsInBoth(o *results.Kernel, n results.Index) bool {
	for i := range o.Results {
		or := &o.Results[i]
		if _, cell := contract.ParseCell(contract.ID(or.ID)); !cell || or.Status != results.Pass {
			continue
		}
		if nr := n.Result(or.ID); nr != nil && nr.Status == results.Pass {
			return true
		}
	}
	return false
}

func rangeText(s span, prec int) string {
	return fmt.Sprintf("%.*f–%.*f", prec, s.lo, prec, s.hi)
}

// figures is a cell's median MB/s and ratio to native, as known.
func figures(m, r span, mbps, ratio bool) string {
	var parts []string
	if mbps {
		parts = append(parts, fmt.Sprintf("%.0f MB/s", m.mid))
	}
	if ratio {
		parts = append(parts, fmt.Sprintf("%.2f×", r.mid))
	}
	return strings.Join(parts, ", ")
}
