#!/bin/bash
# make profile WORKLOAD=NAME|all [ITERATIONS=N] [BLOCKS=fn,fn]: instructions per call of
# make bench's workloads, C iommufd against iommufd_rs, in one boot; for
# one workload, where they go, per function. A real_* name runs the four
# real-domain lines (edu's VT-d domain) and details that one.
#
# A QEMU TCG plugin (scripts/profile/tbprof.c) counts the instructions of
# every translated block between two markers that iommufd_profile places
# around its loop. scripts/profile.py names the blocks with System.map and
# the modules' /proc/kallsyms lines. Without VM_ICOUNT=1 a whole `rep`
# string counts as one instruction. Not part of make check; nothing here
# is timed.
. "$(dirname "$0")/lib.sh"

workload=${1:?usage: profile.sh WORKLOAD|all [ITERATIONS]}
iterations=${2:-}
case $workload in *[!a-z0-9_]*) die "bad workload name: $workload" ;; esac
case $iterations in *[!0-9]*) die "bad iteration count: $iterations" ;; esac

build_all
kdir=$(bash "$REPO/scripts/build-kernel.sh")
in_root gcc -O2 -Wall -Wextra -shared -fPIC -fvisibility=hidden \
	-o /build/tbprof.so "$ROOT_REPO/scripts/profile/tbprof.c"

out=$ROOT/build/profile
rm -rf "$out"
mkdir -p "$out"
guest=$out/guest.sh
case $workload in
real_*)
	# The real-domain lines: guest/bench-real.sh in its profile mode
	# (every real line, each in its own window).
	cat >"$guest" <<EOF_GUEST
RB_MODE=profile
. /guest/bench-real.sh
EOF_GUEST
	;;
*)
	cat >"$guest" <<EOF_GUEST
# C first, then iommufd_rs; one plugin window per workload.
load_c || exit 1
section kallsyms_c grep -E '\\[(iommufd|iommu_amdv1)\\]' /proc/kallsyms
/bin/iommufd_profile c $workload $iterations; c_rc=\$?
unload_c || exit 1
load_rust || exit 1
section kallsyms_rust grep '\\[iommufd_rs\\]' /proc/kallsyms
/bin/iommufd_profile rust $workload $iterations; rust_rc=\$?
unload_rust
[ \$c_rc = 0 ] && [ \$rust_rc = 0 ]
EOF_GUEST
	;;
esac
log "profiling $workload${iterations:+, $iterations calls} per module (TCG with the tbprof plugin)"
VM_QEMU_ARGS="-plugin /build/tbprof.so,out=/build/profile/window" \
	VM_LOG=$out/vm.log bash "$REPO/scripts/vm.sh" "$guest" >/dev/null ||
	die "the profiling guest failed; see $out/vm.log"
in_root python3 "$ROOT_REPO/scripts/profile.py" "$kdir/System.map" /build/profile/vm.log \
	/build/profile/window "$workload" "${PROFILE_BLOCKS:-}" >"$out/table.txt"
cat "$out/table.txt"
# make bench's README table takes the per-call totals of a full run.
if [ "$workload" = all ]; then
	cp "$out/table.txt" "$CACHE/profile-all.txt"
fi
