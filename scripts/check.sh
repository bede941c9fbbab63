#!/bin/bash
# make check: set everything up, then run
#  - host checks: uAPI header ABI identity, rustfmt, clippy-clean build;
#  - in the VM: KUnit, our selftests, the upstream ratchet, clean unload,
#    real devices (vfio-pci and edu DMA through C iommufd, type1 and
#    iommufd_rs), QEMU assigning an edu through vfio-pci on each of them.
# Ends with `N passed, M failed`; exits non-zero on any failure.
. "$(dirname "$0")/lib.sh"

start=$SECONDS
bash "$REPO/scripts/setup-root.sh"
kdir=$(bash "$REPO/scripts/build-kernel.sh")

host=$CACHE/host-checks.ktap
n=0
: >"$host"
host_result() { # NAME STATUS(0=ok) [DETAILS]
	n=$((n + 1))
	if [ "$2" = 0 ]; then echo "ok $n $1" >>"$host"; else
		echo "not ok $n $1" >>"$host"; [ -z "${3:-}" ] || printf '%s\n' "$3" | sed 's/^/  # /' >&2
	fi
}

# Our ABI headers must be binary-identical to Linux 7.2's: "ours theirs".
for pair in "include/uapi/linux/iommufd.h include/uapi/linux/iommufd.h" \
	"iommufd/iommufd_test.h drivers/iommu/iommufd/iommufd_test.h"; do
	set -- $pair
	rc=0; out=$(in_root python3 "$ROOT_REPO/scripts/check-uapi.py" --cc clang \
		--ours "$ROOT_REPO/$1" --theirs "/build/linux-source-7.2/$2" \
		--hdr "$ROOT_REPO/include/uapi" --hdr "$kdir/usr-headers/include" 2>&1) || rc=$?
	host_result "$1 is ABI-identical to Linux 7.2's $2" $rc "$(printf '%s\n' "$out" | grep '^not ok' || true)"
done

# Layers: kernel wrappers (iommufd/sys/) import no logic module, and the
# only import cycle is the object table's with the kinds it names.
rc=0; out=$(python3 "$REPO/scripts/check-layers.py" --crate "$REPO/iommufd" 2>&1) || rc=$?
host_result "layers: wrappers import no logic, only object kinds in the import cycle" $rc "$out"

# Formatting, with the kernel's rustfmt settings for module code.
rc=0; out=$(in_root rustfmt --check --edition 2021 --config-path /build/linux-source-7.2/.rustfmt.toml \
	"$ROOT_REPO/iommufd/iommufd_rs_main.rs" 2>&1) || rc=$?
host_result "rustfmt: module code" $rc "$out"
rc=0; out=$(in_root /bin/sh -c "cd $ROOT_REPO/selftests && rustfmt --check --edition 2021 src/lib.rs src/bin/*.rs" 2>&1) || rc=$?
host_result "rustfmt: selftests" $rc "$out"

# The module, built with clippy: no warnings allowed.
build_log=$CACHE/module-build.log
rc=0; CLIPPY=1 bash "$REPO/scripts/build-module.sh" >/dev/null 2>"$build_log" || rc=$?
warnings=$(grep -c 'warning:' "$build_log" || true)
[ "$rc" = 0 ] || cat "$build_log" >&2
host_result "module builds with CLIPPY=1" $rc
host_result "module build has no warnings ($warnings)" "$warnings" "$(grep -A5 'warning:' "$build_log" | head -40)"
[ "$rc" = 0 ] || { echo "0 passed, 1 failed"; exit 1; }

# The production module: no test interface, clippy-clean, loaded below.
prod_log=$CACHE/module-prod-build.log
rc=0; prod_ko=$(bash "$REPO/scripts/build-module-prod.sh" 2>"$prod_log") || rc=$?
prod_warnings=$(grep -c 'warning:' "$prod_log" || true)
[ "$rc" = 0 ] || { cat "$prod_log" >&2; prod_ko=; }
host_result "production module (CONFIG_IOMMUFD_RS_TEST=n) builds with CLIPPY=1" $rc
host_result "production module build has no warnings ($prod_warnings)" "$prod_warnings" "$(grep -A5 'warning:' "$prod_log" | head -40)"

us_log=$CACHE/userspace-build.log
bash "$REPO/scripts/build-userspace.sh" >/dev/null 2>"$us_log" || { cat "$us_log" >&2; die "userspace build failed"; }
us_warnings=$(grep -c 'warning:' "$us_log" || true)
host_result "test programs build with no warnings ($us_warnings)" "$us_warnings" "$(grep -A5 'warning:' "$us_log" | head -40)"

log "booting the test VM (TCG)"
vm_rc=0; VM_WITH_QEMU=1 PROD_MODULE_KO=$prod_ko VM_LOG=$CACHE/check-vm.log bash "$REPO/scripts/vm.sh" "$REPO/scripts/guest/check.sh" >/dev/null || vm_rc=$?
[ "$vm_rc" = 0 ] || log "guest script exited $vm_rc"

rc=0; python3 "$REPO/scripts/results.py" check "$CACHE/check-vm.log" "$REPO/tests/upstream-must-pass.txt" "$host" || rc=$?
log "make check took $((SECONDS - start)) s (guest log: $CACHE/check-vm.log)"
[ "$vm_rc" -le 1 ] || rc=1
exit $rc
