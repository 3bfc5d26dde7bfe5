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
// runs. Failed password logins are limited per peer address and per user
// name (limit.go), and rejections are logged in aggregate (rejectlog.go).
//
// Writes are authorized twice: by path against the policy before the Set
// touches the store (Authorizer.Write), and by what the commit would
// change inside the commit (Authorizer.WriteChanges): a tier leaf of a
// route, pod or underlay mutation never ranks above its writer's tier
// (tierleaf.go). A pending commit-confirmed may be ended by its author's
// tier or a higher one (Authorizer.ResolvePending).
package auth
