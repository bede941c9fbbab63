#!/bin/bash
# Build the test kernel from linux-source-7.2 and kernel/config.fragment.
# The tree is keyed by the fragment's content and built once per key.
# Prints the tree's path inside the build root.
. "$(dirname "$0")/lib.sh"

kdir=$(kernel_dir_in_root)
if [ -f "$ROOT$kdir/.iommufd-rs-built" ]; then
	echo "$kdir"
	exit 0
fi

log "building the $KERNEL_VARIANT kernel in $CACHE/root$kdir (about 5 minutes on 2 cores)"
start=$SECONDS
in_root /bin/bash -s "$kdir" "$(nproc)" $(kernel_fragments) >"$CACHE/kernel-build-$KERNEL_VARIANT.log" 2>&1 <<'EOF' ||
set -euo pipefail
kdir=$1 jobs=$2
shift 2
fragments=("$@")
src=/build/linux-source-7.2
if [ ! -f $src/Makefile ]; then
	mkdir -p /build
	rm -rf $src.tmp && mkdir $src.tmp
	tar -C $src.tmp --strip-components=1 -xf /usr/src/linux-source-7.2.tar.xz
	mv $src.tmp $src
fi
# An interrupted build resumes: the configuration step is done once.
if [ ! -f "$kdir/.iommufd-rs-configured" ]; then
rm -rf "$kdir" && mkdir -p "$kdir"
make -C $src O="$kdir" LLVM=1 tinyconfig >/dev/null
args=()
while IFS= read -r line; do
	line=${line%%#*}; line=${line//[[:space:]]/}
	[ -n "$line" ] || continue
	name=${line%%=*} val=${line#*=}
	case $val in
	y) args+=(--enable "$name") ;;
	m) args+=(--module "$name") ;;
	n) args+=(--disable "$name") ;;
	*) args+=(--set-val "$name" "$val") ;;
	esac
done < <(cd /repo && cat "${fragments[@]}")
$src/scripts/config --file "$kdir/.config" "${args[@]}"
make -C $src O="$kdir" LLVM=1 olddefconfig >/dev/null
# Every option in the fragment must have survived olddefconfig.
bad=0
while IFS= read -r line; do
	line=${line%%#*}; line=${line//[[:space:]]/}
	[ -n "$line" ] || continue
	name=${line%%=*} val=${line#*=}
	if [ "$val" = n ]; then
		grep -qx "CONFIG_$name=[ym]" "$kdir/.config" && { echo "CONFIG_$name still set"; bad=1; }
	else
		grep -qx "CONFIG_$name=$val" "$kdir/.config" || { echo "CONFIG_$name=$val did not stick"; bad=1; }
	fi
done < <(cd /repo && cat "${fragments[@]}")
[ $bad = 0 ] || exit 1
touch "$kdir/.iommufd-rs-configured"
fi
make -C $src O="$kdir" LLVM=1 -j"$jobs" bzImage modules
make -C $src O="$kdir" LLVM=1 headers_install INSTALL_HDR_PATH="$kdir/usr-headers" >/dev/null
touch "$kdir/.iommufd-rs-built"
EOF
	{ tail -30 "$CACHE/kernel-build-$KERNEL_VARIANT.log" >&2; die "kernel build failed (log: $CACHE/kernel-build-$KERNEL_VARIANT.log)"; }
log "kernel built in $((SECONDS - start)) s"
echo "$kdir"
