package listen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/credentials"
)

// PeerCred is the AuthInfo of a unix socket connection: the credentials
// the kernel recorded for the peer process when it connected.
type PeerCred struct {
	credentials.CommonAuthInfo
	PID, UID, GID uint32
}

// AuthType implements credentials.AuthInfo.
func (PeerCred) AuthType() string { return "unix-peercred" }

// UnixOptions configure the unix socket.
type UnixOptions struct {
	// Mode is the socket file's permission bits (default 0660).
	Mode os.FileMode
	// GID, when not negative, becomes the socket file's group.
	GID int
}

// Unix listens on a unix socket at path. A stale socket file (one nobody
// answers on) is removed first; a live one is an error, since another
// daemon owns it. The socket is chmod'ed right after bind: until then it
// carries the umask's mode, which without write bits for others (any
// usual umask) does not let them connect.
func Unix(path string, o UnixOptions) (net.Listener, error) {
	if o.Mode == 0 {
		o.Mode = 0o660
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create socket dir: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("listen on %s: exists and is not a socket", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("listen on %s: another process is serving it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, o.Mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod socket: %w", err)
	}
	if o.GID >= 0 {
		if err := os.Chown(path, -1, o.GID); err != nil {
			ln.Close()
			return nil, fmt.Errorf("chown socket to group %d: %w", o.GID, err)
		}
	}
	return ln, nil
}

// UsableDir reports whether dir exists (or can be created) and is
// writable by this process.
func UsableDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return unix.Access(dir, unix.W_OK|unix.X_OK)
}

// PeerCreds are gRPC transport credentials for unix sockets: the
// handshake does no cryptography (the kernel authenticates the peer) and
// records the peer's SO_PEERCRED as the connection's AuthInfo.
type PeerCreds struct{}

var errNotUnix = errors.New("not a unix socket connection")

func peerCred(c net.Conn) (PeerCred, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return PeerCred{}, errNotUnix
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return PeerCred{}, fmt.Errorf("read peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return PeerCred{}, fmt.Errorf("read peer credentials: %w", err)
	}
	if serr != nil {
		return PeerCred{}, fmt.Errorf("read peer credentials: %w", serr)
	}
	return PeerCred{
		// The kernel vouches for the peer and the bytes never leave the
		// host, which is what grpc's own local credentials claim too.
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
		PID:            uint32(cred.Pid), UID: cred.Uid, GID: cred.Gid,
	}, nil
}

// ServerHandshake implements credentials.TransportCredentials.
func (PeerCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	pc, err := peerCred(c)
	if err != nil {
		return nil, nil, err
	}
	return c, pc, nil
}

// ClientHandshake implements credentials.TransportCredentials; a client
// learns the daemon's credentials the same way.
func (PeerCreds) ClientHandshake(_ context.Context, _ string, c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	pc, err := peerCred(c)
	if err != nil {
		return nil, nil, err
	}
	return c, pc, nil
}

// Info implements credentials.TransportCredentials.
func (PeerCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "unix-peercred"}
}

// Clone implements credentials.TransportCredentials.
func (PeerCreds) Clone() credentials.TransportCredentials { return PeerCreds{} }

// OverrideServerName implements credentials.TransportCredentials.
func (PeerCreds) OverrideServerName(string) error { return nil }
