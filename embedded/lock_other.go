//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package embedded

// storeLock does nothing on this platform: two servers on one store
// directory are not detected here.
type storeLock struct{}

func lockStore(string) (*storeLock, error) { return &storeLock{}, nil }

func (*storeLock) release() error { return nil }
