// Package auth owns who a caller is and what it may change: the users
// file (argon2id password hashes, never plaintext), the tier policy
// (which tier may Set which path prefixes, which certificate identity or
// unix uid/gid holds which tier), the gRPC interceptors that turn a
// connection's credentials into an Identity, and the Authorizer the gNMI
// target consults before it reads or writes the tree.
//
// Identity paths, in the order they are tried:
//   - a unix socket peer: the kernel's SO_PEERCRED uid/gid (taken at
//     accept time by package listen) mapped by the policy's unix section;
//   - a verified TLS client certificate: its CN, else its first DNS or
//     URI SAN, mapped by the policy's certificates section;
//   - gNMI's username/password metadata, checked against the users file.
//
// A unix peer or verified certificate the policy does not map falls back
// to username/password when the metadata is present.
//
// Anything else is rejected with codes.Unauthenticated before a handler
// runs.
package auth
