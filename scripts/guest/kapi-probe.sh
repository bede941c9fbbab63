# The in-kernel access API as vfio uses it for emulated devices
# (vfio_pin_pages(), vfio_dma_rw()): the C test module kapi_probe.ko calls
# the upstream names and /bin/iommufd_kapi_probe drives it,
#  - on C iommufd.ko;
#  - on iommufd_rs.ko with iommufd_rs_vfio.ko, whose result lines must
#    equal C's line for line.
# Each run's result lines are kept in /tmp/kp-<provider>.ktap. Module
# reference counts must come back and every module must unload. Ends with
# `kapi probe: N passed, M failed`.
#
# Runs on its own after common.sh (vm.sh scripts/guest/kapi-probe.sh), or
# sourced by check.sh from /guest/kapi-probe.sh.

kp_pass=0
kp_fail=0
kp_n=0

# kp_check NAME CMD...: one result line, counted in the summary.
kp_check() {
	local name=$1
	shift
	kp_n=$((kp_n + 1))
	if "$@"; then
		echo "ok $kp_n $name"
		kp_pass=$((kp_pass + 1))
	else
		echo "not ok $kp_n $name"
		kp_fail=$((kp_fail + 1))
	fi
}

kp_refs() { cat /sys/module/$1/refcnt; }

# kp_refs_are MODULE COUNT: the module's reference count is COUNT.
kp_refs_are() {
	local now=$(kp_refs $1)
	[ "$now" = "$2" ] || { echo "# $1: refcnt $now, expected $2"; return 1; }
}

kp_unload_c() { rmmod kapi_probe && unload_c; }

kp_load_rust() {
	insmod /lib/modules/iommufd_rs.ko && insmod /lib/modules/iommufd_rs_vfio.ko
}

kp_unload_rust() {
	rmmod kapi_probe && rmmod iommufd_rs_vfio && rmmod iommufd_rs
}

kp_gone() {
	local m
	for m in kapi_probe iommufd iommufd_rs iommufd_rs_vfio; do
		[ ! -e /sys/module/$m ] || { echo "# module $m still loaded"; return 1; }
	done
	[ ! -e /dev/iommu ] && [ ! -e /dev/kapi_probe ]
}

# kp_run TAG MODULE: one run of the test program against the provider
# MODULE, its result lines kept in /tmp/kp-TAG.ktap and counted; a run
# that ends without its summary line counts as one more failure.
kp_run() {
	local tag=$1 module=$2
	{
		timeout -s KILL "${KP_TIMEOUT:-300}" /bin/iommufd_kapi_probe --module "$module"
		echo "# exit status $?"
	} 2>&1 | tee /tmp/kp-$tag.out
	grep -E '^(not )?ok ' /tmp/kp-$tag.out >/tmp/kp-$tag.ktap
	kp_pass=$((kp_pass + $(grep -c '^ok ' /tmp/kp-$tag.ktap)))
	kp_fail=$((kp_fail + $(grep -c '^not ok ' /tmp/kp-$tag.ktap)))
	if ! grep -q '^# kapi probe: ' /tmp/kp-$tag.out; then
		kp_n=$((kp_n + 1))
		echo "not ok $kp_n iommufd_kapi_probe $tag ran to its end"
		kp_fail=$((kp_fail + 1))
	fi
}

# The two providers' result lines are the same; if not, the difference.
kp_same() {
	cmp -s /tmp/kp-c.ktap /tmp/kp-rs.ktap && return 0
	diff /tmp/kp-c.ktap /tmp/kp-rs.ktap | sed 's/^/# /'
	return 1
}

kapi_probe() {
	local t0=$(date +%s) refs
	if [ ! -f /lib/modules/kapi_probe.ko ]; then
		echo "# no kapi_probe.ko (a test build makes it): kapi probe not tested"
		return
	fi
	kp_check "insmod iommufd (C)" load_c
	kp_check "insmod kapi_probe on C iommufd" insmod /lib/modules/kapi_probe.ko
	refs=$(kp_refs iommufd)
	kp_run c iommufd
	kp_check "C iommufd's refcount back after the run" kp_refs_are iommufd "$refs"
	kp_check "kapi_probe's refcount back after the run" kp_refs_are kapi_probe 0
	kp_check "rmmod kapi_probe, then iommufd (C)" kp_unload_c
	kp_check "insmod iommufd_rs and iommufd_rs_vfio" kp_load_rust
	kp_check "insmod kapi_probe on iommufd_rs" insmod /lib/modules/kapi_probe.ko
	refs="$(kp_refs iommufd_rs) $(kp_refs iommufd_rs_vfio)"
	kp_run rs iommufd_rs
	kp_check "iommufd_rs results equal C iommufd's" kp_same
	kp_check "iommufd_rs's and iommufd_rs_vfio's refcounts back after the run" \
		test "$(kp_refs iommufd_rs) $(kp_refs iommufd_rs_vfio)" = "$refs"
	kp_check "kapi_probe's refcount back after the run" kp_refs_are kapi_probe 0
	kp_check "rmmod kapi_probe, iommufd_rs_vfio, then iommufd_rs" kp_unload_rust
	kp_check "no module or node left" kp_gone
	echo "# kapi probe took $(($(date +%s) - t0)) s"
	echo "kapi probe: $kp_pass passed, $kp_fail failed"
}

section kapi-probe kapi_probe
