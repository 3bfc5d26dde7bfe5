// Package listen owns the daemon's listeners: the TCP listener with its
// TLS configuration (operator-supplied certificates, optional mTLS, or a
// self-signed certificate generated into the data dir), the loopback
// check behind --insecure, and the unix socket whose peers are
// identified by the kernel's SO_PEERCRED credentials.
package listen
