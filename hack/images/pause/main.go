// Command pause is the pod sandbox process: it holds the pod's namespaces and does
// nothing else until the kubelet stops the sandbox with SIGTERM (or SIGINT), then exits 0.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range signals {
		if sig == syscall.SIGCHLD {
			// As PID 1 of the sandbox it inherits orphans; reap them so no zombie stays.
			reap()
			continue
		}
		os.Exit(0)
	}
}

func reap() {
	for {
		pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
