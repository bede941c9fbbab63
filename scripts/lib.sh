# Shared settings for the harness scripts. Source it; do not run it.
#
# Everything built here (the Debian root, kernel trees, initramfs images) lives
# in the cache directory, outside the repository, so that clean clones reuse it.

set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${IOMMUFD_RS_CACHE:-$HOME/.cache/iommufd-rs}
ROOT=$CACHE/root
# Where the repository appears inside the root while a command runs there.
ROOT_REPO=/repo

log() { printf '[iommufd-rs] %s\n' "$*" >&2; }
die() { printf '[iommufd-rs] error: %s\n' "$*" >&2; exit 1; }

# Short content hash of the given files, used to key cached builds.
content_hash() { cat "$@" | sha256sum | cut -c1-16; }

# Run a command inside the Debian root. /proc, /sys, /dev and the repository
# are mounted in a private mount namespace, so every mount disappears with the
# command, whether it succeeds or fails.
in_root() {
	[ -x "$ROOT/bin/sh" ] || die "build root missing: run scripts/setup-root.sh"
	unshare --mount --fork -- /bin/bash -c '
		set -e
		root=$1 repo=$2 inrepo=$3; shift 3
		mount --make-rprivate /
		mount -t proc proc "$root/proc"
		mount --rbind /sys "$root/sys"
		mount --rbind /dev "$root/dev"
		mkdir -p "$root$inrepo"
		mount --bind "$repo" "$root$inrepo"
		exec chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb \
			PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin LANG=C.UTF-8 "$@"
	' in_root "$ROOT" "$REPO" "$ROOT_REPO" "$@"
}

# Kernel tree paths, keyed by the config fragment's content and by the build
# recipe's version: bump KERNEL_RECIPE when build-kernel.sh changes what it
# produces.
KERNEL_RECIPE=1
# KERNEL_VARIANT=debug adds kernel/debug.fragment (KASAN, lockdep, ...).
KERNEL_VARIANT=${KERNEL_VARIANT:-test}
kernel_fragments() {
	echo kernel/config.fragment
	[ "$KERNEL_VARIANT" != debug ] || echo kernel/debug.fragment
}
kernel_key() {
	{ for f in $(kernel_fragments); do cat "$REPO/$f"; done; echo "recipe $KERNEL_RECIPE"; } |
		sha256sum | cut -c1-16
}
kernel_dir_in_root() {
	if [ "$KERNEL_VARIANT" = debug ]; then echo "/build/linux-debug-$(kernel_key)"
	else echo "/build/linux-$(kernel_key)"; fi
}

# Provision the root and build the module and the guest programs, quietly.
build_all() {
	bash "$REPO/scripts/setup-root.sh"
	CLIPPY=0 bash "$REPO/scripts/build-module.sh" >/dev/null
	bash "$REPO/scripts/build-userspace.sh" >/dev/null
}
