package harness

import (
	"strings"
	"testing"

	"gotest.tools/v3/assert"
)

func TestCPUModel(t *testing.T) {
	cpuinfo := "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel\t\t: 85\nmodel name\t: Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz\nflags\t\t: fpu\n\n" +
		"processor\t: 1\nmodel name\t: Other\n"
	assert.Equal(t, cpuModel(strings.NewReader(cpuinfo)), "Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz")
	assert.Equal(t, cpuModel(strings.NewReader("processor\t: 0\nmodel\t: 85\n")), "")
}
