#!/bin/bash
# make check-debug: everything make check runs, plus a longer fuzz run, on a
# second kernel with KASAN, lockdep, kmemleak, DEBUG_ATOMIC_SLEEP, DEBUG_LIST,
# SLUB_DEBUG and UBSAN (kernel/debug.fragment), then a kmemleak scan after
# all modules are unloaded. Fails on any failed test or any kernel splat.
. "$(dirname "$0")/lib.sh"
export KERNEL_VARIANT=debug

start=$SECONDS
bash "$REPO/scripts/setup-root.sh"
bash "$REPO/scripts/build-kernel.sh" >/dev/null
host=$CACHE/host-checks-debug.ktap
: >"$host"
rc=0; CLIPPY=0 bash "$REPO/scripts/build-module.sh" >/dev/null 2>"$CACHE/module-build-debug.log" || rc=$?
if [ "$rc" = 0 ]; then echo "ok 1 module builds against the debug kernel" >>"$host"
else cat "$CACHE/module-build-debug.log" >&2; echo "not ok 1 module builds against the debug kernel" >>"$host"; fi
prod_ko=$(CLIPPY=0 bash "$REPO/scripts/build-module-prod.sh" 2>"$CACHE/module-prod-build-debug.log") || prod_ko=
if [ -n "$prod_ko" ]; then echo "ok 2 production module builds against the debug kernel" >>"$host"
else cat "$CACHE/module-prod-build-debug.log" >&2; echo "not ok 2 production module builds against the debug kernel" >>"$host"; fi
bash "$REPO/scripts/build-userspace.sh" >/dev/null 2>&1 || die "userspace build failed"

guest=$(mktemp)
trap 'rm -f "$guest"' EXIT
{
	echo "export IOMMUFD_TEST_SLAB_CHECK=0 STRESS_SECONDS=20"
	cat "$REPO/scripts/guest/check.sh" "$REPO/scripts/guest/debug-extra.sh"
} >"$guest"
log "booting the debug VM (TCG; KASAN makes it slow)"
vm_rc=0; VM_WITH_QEMU=1 PROD_MODULE_KO=$prod_ko VM_TIMEOUT=${VM_TIMEOUT:-3000} VM_LOG=$CACHE/check-debug-vm.log bash "$REPO/scripts/vm.sh" "$guest" >/dev/null || vm_rc=$?
rc=0; python3 "$REPO/scripts/results.py" check "$CACHE/check-debug-vm.log" "$REPO/tests/upstream-must-pass.txt" "$host" || rc=$?
leaks=$(sed -n '/##BEGIN kmemleak/,/##END kmemleak/p' "$CACHE/check-debug-vm.log" | grep -c 'unreferenced object' || true)
log "kmemleak: $leaks unreferenced objects; make check-debug took $((SECONDS - start)) s"
[ "$vm_rc" -le 1 ] || rc=1
exit $rc
