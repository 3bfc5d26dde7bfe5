"""Echo endpoints for the posture walk's Shellstream sessions.

Usage: echo-endpoint.py SOCKET...

Listens on each unix socket path given; on every connection it reads the
Shellstream preamble line the node sends first, then echoes each byte back
until the session's end of input, then closes. It stands in for a session
type's local service (a console, an incident tool) so a granted session can
be shown to carry data both ways. It runs until it is killed.
"""

import signal
import socket
import sys
import threading


def echo(conn):
    with conn:
        buf = b""
        while b"\n" not in buf:
            chunk = conn.recv(4096)
            if not chunk:
                return
            buf += chunk
        rest = buf.split(b"\n", 1)[1]
        if rest:
            conn.sendall(rest)
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                break
            conn.sendall(chunk)
        conn.shutdown(socket.SHUT_WR)


def serve(path):
    ln = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ln.bind(path)
    ln.listen(64)
    while True:
        conn, _ = ln.accept()
        threading.Thread(target=echo, args=(conn,), daemon=True).start()


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for path in sys.argv[1:]:
        threading.Thread(target=serve, args=(path,), daemon=True).start()
    signal.sigwait({signal.SIGTERM, signal.SIGINT})


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    main()
