// Package buildinfo owns the daemon's version string: the one the build
// stamps with -ldflags "-X github.com/guildhouse-co/kedge/server/buildinfo.version=..."
// (the Makefile passes git describe --always --dirty, or VERSION=...),
// else what the Go toolchain recorded, else "devel". The build runs with
// -buildvcs=false, so without the stamp a clone's binary knows no
// revision; the stamp is what /kedge/system/state/version and
// kedge-daemon --version report.
package buildinfo

import "runtime/debug"

// version is set by the linker (-X); empty in a plain go build.
var version string

// Version names this binary: the linker stamp when set, else the module
// version when built from a tagged module, else the VCS revision when
// the toolchain recorded one, else "devel".
func Version() string {
	if version != "" {
		return version
	}
	return fromBuildInfo(debug.ReadBuildInfo())
}

func fromBuildInfo(bi *debug.BuildInfo, ok bool) string {
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && s.Value != "" {
			return s.Value
		}
	}
	return "devel"
}
