package pgtest

import "syscall"

// sysProcAttr runs the child as cred (when set) and kills it when the test
// binary dies without cleaning up (a timeout panic, say).
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
}
