//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package embedded

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// lockFileName sits next to nats-server's "jetstream" directory. nats-server
// 2.15 takes no lock of its own on the store directory: two servers on one
// directory both start and write the same files.
const lockFileName = "switchboard.lock"

// storeLock is an exclusive flock on <StoreDir>/switchboard.lock. flock locks
// belong to the open file, so a second server in the same process is refused
// too, and the kernel drops the lock if the process dies.
type storeLock struct {
	f *os.File
}

func lockStore(dir string) (*storeLock, error) {
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &startError{
				msg:  fmt.Sprintf("embedded nats: store dir %s is in use by %s", dir, lockOwner(path)),
				errs: []error{ErrStoreLocked, err},
			}
		}
		return nil, fmt.Errorf("embedded nats: lock %s: %w", path, err)
	}
	// The pid is only for the message above; the lock is what counts.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &storeLock{f: f}, nil
}

// lockOwner describes who holds the lock, for the error message.
func lockOwner(path string) string {
	switch pid := readPID(path); pid {
	case 0:
		return "another process (is another switchboard dev running?)"
	case os.Getpid():
		return fmt.Sprintf("another server in this process (pid %d)", pid)
	default:
		return fmt.Sprintf("pid %d (is another switchboard dev running?)", pid)
	}
}

// readPID returns the pid recorded in the lock file, or 0 if there is none
// yet (the owner may be between locking and writing).
func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// release unlocks and closes the file. The file stays: removing it would let
// a later server lock a new file while another still holds the old one.
func (l *storeLock) release() error {
	if err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN); err != nil {
		_ = l.f.Close()
		return fmt.Errorf("embedded nats: unlock store: %w", err)
	}
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("embedded nats: close lock file: %w", err)
	}
	return nil
}
