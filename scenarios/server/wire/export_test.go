package wire

import "testing"

// SlowURingRegister has each REGISTER of a ring's entry followed by f
// for the rest of the test.
func SlowURingRegister(t *testing.T, f func()) {
	old := uringRegistered
	uringRegistered = f
	t.Cleanup(func() { uringRegistered = old })
}
