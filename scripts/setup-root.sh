#!/bin/bash
# Provision the build root: a Debian forky tree with the kernel Rust toolchain
# (rustc + rust-src 1.97, bindgen 0.72, clang/lld) and linux-source-7.2.
# Idempotent: does nothing when the root already holds this package set.
. "$(dirname "$0")/lib.sh"

SUITE=forky
MIRROR=${IOMMUFD_RS_MIRROR:-http://deb.debian.org/debian}
# Packages whose versions the project is pinned to: "name version-prefix".
PINNED=(
	"rustc 1.97"
	"rust-src 1.97"
	"bindgen 0.72"
	"linux-source-7.2 7.2"
)
PACKAGES=(
	rustc rust-src bindgen rustfmt rust-clippy cargo clang lld llvm libclang-dev
	make gcc libc6-dev flex bison bc libelf-dev libssl-dev cpio kmod
	busybox-static qemu-system-x86 linux-source-7.2 xz-utils python3 pahole
	libcap-dev python3-matplotlib rsync
)
STAMP=$ROOT/.iommufd-rs-packages
want=$(printf '%s\n' "${PACKAGES[@]}" "${PINNED[@]}" | sha256sum | cut -c1-16)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
	exit 0
fi

for tool in debootstrap unshare chroot; do
	command -v "$tool" >/dev/null && continue
	if [ "$tool" = debootstrap ] && command -v apt-get >/dev/null; then
		log "installing debootstrap on the host"
		apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null
	else
		die "host tool '$tool' is missing"
	fi
done

mkdir -p "$CACHE"
if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
	rm -rf "$ROOT"
	# Older debootstrap releases have no forky script; sid's works for it.
	script=/usr/share/debootstrap/scripts/$SUITE
	[ -e "$script" ] || script=/usr/share/debootstrap/scripts/sid
	log "debootstrap $SUITE into $ROOT (about a minute)"
	debootstrap --variant=minbase "$SUITE" "$ROOT.tmp" "$MIRROR" "$script" \
		>"$CACHE/debootstrap.log" 2>&1 ||
		{ tail -20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
	mv "$ROOT.tmp" "$ROOT"
fi

# The mirror reachable here can serve Release files past their Valid-Until.
echo 'Acquire::Check-Valid-Until "false";' >"$ROOT/etc/apt/apt.conf.d/99iommufd-rs"

# Make sure apt's package lists are fresh, then check every package exists
# before installing, so that a package gone from Debian is named plainly.
in_root apt-get update -qq >/dev/null
for p in "${PACKAGES[@]}"; do
	in_root apt-cache show "$p" >/dev/null 2>&1 ||
		die "Debian $SUITE no longer has package '$p'; the toolchain pin needs updating"
done
for entry in "${PINNED[@]}"; do
	set -- $entry
	vers=$(in_root apt-cache policy "$1" | awk '/Candidate:/ { print $2 }')
	case "$vers" in
	"$2"*) ;;
	*) die "Debian $SUITE has '$1' at version '${vers:-none}', not the pinned $2.x" ;;
	esac
done

log "installing ${#PACKAGES[@]} packages into the root"
in_root /bin/sh -c "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${PACKAGES[*]}" \
	>"$CACHE/apt.log" 2>&1 || { tail -20 "$CACHE/apt.log" >&2; die "package install failed (log: $CACHE/apt.log)"; }

echo "$want" >"$STAMP"
log "build root ready: $(in_root rustc --version)"
