package pinned

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Environment of the child process that the traffic test runs inside the
// test cgroup (re-executing this test binary).
const (
	envChildNetns = "KEDGE_BPFMAP_CHILD_NETNS" // network namespace to enter
	envChildDsts  = "KEDGE_BPFMAP_CHILD_DSTS"  // comma-separated destination IPs
)

func TestMain(m *testing.M) {
	if ns := os.Getenv(envChildNetns); ns != "" {
		os.Exit(runChild(ns, strings.Split(os.Getenv(envChildDsts), ",")))
	}
	os.Exit(m.Run())
}

// Outcomes the child prints per destination.
const (
	outDelivered = "delivered"
	outEPERM     = "dropped-eperm"   // the cgroup egress program refused the packet
	outLost      = "dropped-timeout" // sent, never arrived
)

// runChild enters the namespace and, for each destination, binds a UDP
// receiver on it, sends one datagram to it, and prints dst=outcome. The
// process sits in the test cgroup, so its egress passes the program.
func runChild(nsPath string, dsts []string) int {
	runtime.LockOSThread() // setns is per thread; the sockets inherit it
	fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open netns:", err)
		return 2
	}
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		fmt.Fprintln(os.Stderr, "setns:", err)
		return 2
	}
	for _, d := range dsts {
		out, err := probe(d)
		if err != nil {
			fmt.Fprintf(os.Stderr, "probe %s: %v\n", d, err)
			return 2
		}
		fmt.Printf("%s=%s\n", d, out)
	}
	return 0
}

func probe(dst string) (string, error) {
	ip := net.ParseIP(dst)
	rx, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
	if err != nil {
		return "", err
	}
	defer rx.Close()
	tx, err := net.DialUDP("udp", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		return "", err
	}
	defer tx.Close()
	if _, err := tx.Write([]byte("kedge")); err != nil {
		if errors.Is(err, syscall.EPERM) {
			return outEPERM, nil
		}
		return "", err
	}
	// A datagram to a local address arrives within microseconds; the
	// deadline only bounds the wait for one that was silently dropped.
	if err := rx.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return "", err
	}
	buf := make([]byte, 16)
	if _, _, err := rx.ReadFromUDP(buf); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return outLost, nil
		}
		return "", err
	}
	return outDelivered, nil
}
