#!/usr/bin/env bash
# rootfs.sh OUT.tar: the dev container's root filesystem, made offline from
# this host (no base image, no debootstrap): the files of the Debian
# packages below and everything they depend on, as dpkg installed them
# here, plus the Go toolchain at $(go env GOROOT). make dev-build turns the
# tar into an image FROM scratch.
set -euo pipefail
out=${1:?usage: rootfs.sh OUT.tar}

# What a Kedge developer runs: make, Go (cgo for -race: gcc, libc6-dev),
# git, ip and wg for the kernel tests, ansible-playbook for the posture
# playbook, CA certificates for the Go module proxy, the C.UTF-8 locale
# (libc-bin) that ansible insists on.
pkgs=(bash coreutils findutils grep sed mawk procps make git gcc libc6-dev
	iproute2 wireguard-tools ca-certificates ansible-core libc-bin)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "rootfs.sh: not installed here: ${missing[*]} (apt-get install ${missing[*]})" >&2
	exit 1
fi
goroot=$(go env GOROOT)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The dependency closure among installed packages (Depends and
# Pre-Depends; apt-cache resolves virtual packages, and also names
# alternatives that are not installed, which dpkg-query drops).
apt-cache depends --recurse --installed --no-recommends --no-suggests --no-conflicts \
	--no-breaks --no-replaces --no-enhances "${pkgs[@]}" 2>/dev/null |
	grep -v '^[ <]' | sort -u |
	{ xargs dpkg-query -W -f='${db:Status-Status} ${Package}\n' 2>/dev/null || true; } |
	sed -n 's/^installed //p' | sort -u >"$work/packages"

# Their files and directories under their real paths: on a usr-merged
# system /bin, /sbin, /lib and /lib64 are links into /usr, and the tar
# must hold each file once, below the link. What dpkg lists but is not
# there (diverted or removed files) is left out.
merged=$(for l in bin sbin lib lib64; do if [ -L "/$l" ]; then printf '%s|' "$l"; fi; done)
xargs dpkg-query -L <"$work/packages" | grep '^/.' |
	sed -E "s#^/(${merged%|})/#/usr/\\1/#" | sort -u |
	while IFS= read -r f; do
		if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\n' "$f"; fi
	done >"$work/files"
{
	# The usr-merge links themselves, and a file dpkg does not list (made
	# by a maintainer script).
	for l in /bin /sbin /lib /lib64; do
		if [ -L "$l" ]; then echo "$l"; fi
	done
	echo /etc/ssl/certs/ca-certificates.crt
	cat "$work/files"
} | sed 's|^/||' | grep -vx 'tmp' | sort -u >"$work/list"

mkdir -p "$work/extra/etc" "$work/extra/tmp" "$work/extra/root" "$work/extra/src" "$work/extra/usr/bin"
chmod 1777 "$work/extra/tmp"
# Links update-alternatives would make.
ln -s mawk "$work/extra/usr/bin/awk"
ln -s gcc "$work/extra/usr/bin/cc"
printf 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$work/extra/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$work/extra/etc/group"

tar --create --file "$out" --numeric-owner --owner 0 --group 0 \
	--directory / --no-recursion --files-from "$work/list" \
	--directory "$work/extra" --recursion etc/passwd etc/group tmp root src usr/bin/awk usr/bin/cc \
	--directory "$(dirname "$goroot")" --transform "s|^$(basename "$goroot")|usr/local/go|" "$(basename "$goroot")"
echo "rootfs.sh: $(wc -l <"$work/packages") packages, $(wc -l <"$work/files") files and Go $(go env GOVERSION) in $out ($(du -h "$out" | cut -f1))"
