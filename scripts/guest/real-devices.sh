# Real devices: vfio-pci and QEMU's edu behind the emulated Intel IOMMU (the
# q35 machine of vm.sh), driven by /bin/iommufd_vfio_edu:
#  - through C iommufd: the cdev path, the legacy group path with
#    /dev/vfio/vfio a symlink to /dev/iommu, and the mix of both;
#  - through vfio's own type1 container (/dev/vfio/vfio): the group path;
#  - through iommufd_rs, with iommufd_rs_vfio.ko giving vfio the in-kernel
#    API's names: the three iommufd paths again, whose results must equal
#    C's line for line (cdev, mix) or type1's (group: the container's
#    dirty tracking, which C iommufd lacks and skips, is type1's).
# Each run's result lines are kept in /tmp/rd-<provider>-<path>.ktap, so that
# another provider's runs can be diffed against them. Ends with
# `real devices: N passed, M failed`.
#
# Runs on its own after common.sh (vm.sh scripts/guest/real-devices.sh), or
# sourced by check.sh from /guest/real-devices.sh. Everything is loaded with
# insmod: vfio's modinfo names iommufd, so modprobe would pick the provider.
# Sourced with rd_functions_only=1 (bench-real.sh), it only defines its
# functions and runs nothing.

rd_pass=0
rd_fail=0
rd_n=0
# The vfio modules, in load order (module names, as rmmod wants them).
rd_vfio_modules="irqbypass vfio vfio_iommu_type1 vfio_pci_core vfio_pci"

# rd_check NAME CMD...: one result line, counted in the summary.
rd_check() {
	local name=$1
	shift
	rd_n=$((rd_n + 1))
	if "$@"; then
		echo "ok $rd_n $name"
		rd_pass=$((rd_pass + 1))
	else
		echo "not ok $rd_n $name"
		rd_fail=$((rd_fail + 1))
	fi
}

rd_load_vfio() {
	local m
	for m in irqbypass vfio vfio_iommu_type1 vfio-pci-core vfio-pci; do
		insmod /lib/modules/$m.ko || return 1
	done
}

rd_load_rust_vfio() {
	insmod /lib/modules/iommufd_rs.ko && insmod /lib/modules/iommufd_rs_vfio.ko
}

rd_unload_rust_vfio() {
	rmmod iommufd_rs_vfio && rmmod iommufd_rs
}

rd_unload_vfio() {
	local m
	for m in vfio_pci vfio_pci_core vfio_iommu_type1 vfio irqbypass; do
		rmmod $m || return 1
	done
}

# None of the vfio modules is left, nor their nodes.
rd_vfio_gone() {
	local m
	for m in $rd_vfio_modules; do
		[ ! -e /sys/module/$m ] || { echo "# module $m still loaded"; return 1; }
	done
	[ ! -e /dev/vfio/vfio ] && [ -z "$(ls /dev/vfio/devices 2>/dev/null)" ]
}

# rd_unskipped FILE NUMBERS: FILE's result lines but those of the tests
# whose numbers are in NUMBERS (space separated).
rd_unskipped() {
	awk -v skip=" $2 " '{ n = ($1 == "not") ? $3 : $2; if (index(skip, " " n " ") == 0) print }' "$1"
}

# rd_same_but_skipped A B: the result lines of A and B are equal once the
# tests A skipped are left out of both (C iommufd skips the container's
# dirty tracking, which it does not have).
rd_same_but_skipped() {
	local skipped
	skipped=$(sed -n 's/^ok \([0-9]*\) .* # SKIP.*$/\1/p' "$1" | tr '\n' ' ')
	[ -z "$skipped" ] || echo "# $1: tests ${skipped% } skipped, left out of the comparison"
	rd_unskipped "$1" "$skipped" >/tmp/rd-cmp-a
	rd_unskipped "$2" "$skipped" >/tmp/rd-cmp-b
	cmp -s /tmp/rd-cmp-a /tmp/rd-cmp-b
}

# rd_run TAG ARGS...: one run of the test program, its result lines kept in
# /tmp/rd-TAG.ktap and counted; a run that ends without its summary line
# counts as one more failure.
rd_run() {
	local tag=$1
	shift
	echo "# iommufd_vfio_edu $*"
	{
		timeout -s KILL "${RD_TIMEOUT:-300}" /bin/iommufd_vfio_edu "$@"
		echo "# exit status $?"
	} 2>&1 | tee /tmp/rd-$tag.out
	grep -E '^(not )?ok ' /tmp/rd-$tag.out >/tmp/rd-$tag.ktap
	rd_pass=$((rd_pass + $(grep -c '^ok ' /tmp/rd-$tag.ktap)))
	rd_fail=$((rd_fail + $(grep -c '^not ok ' /tmp/rd-$tag.ktap)))
	if ! grep -q '^# real devices: ' /tmp/rd-$tag.out; then
		rd_n=$((rd_n + 1))
		echo "not ok $rd_n iommufd_vfio_edu $tag ran to its end"
		rd_fail=$((rd_fail + 1))
	fi
}

real_devices() {
	local t0=$(date +%s) printk=$(cut -f1 /proc/sys/kernel/printk)
	if ! grep -qx 0x11e8 /sys/bus/pci/devices/*/device 2>/dev/null; then
		echo "# no edu device in this machine: real devices not tested"
		return
	fi
	# The DMAR fault reports of the negative cases stay in the log, off the
	# console, where they would split result lines.
	dmesg -n 1
	rd_check "insmod iommufd (C) for vfio" load_c
	rd_check "insmod irqbypass, vfio, vfio_iommu_type1, vfio-pci-core, vfio-pci" rd_load_vfio
	rd_check "/dev/vfio/vfio is vfio's own container node" test -c /dev/vfio/vfio
	rd_run c-cdev cdev --iommufd /dev/iommu --module iommufd
	mv /dev/vfio/vfio /dev/vfio/vfio.type1 && ln -s /dev/iommu /dev/vfio/vfio
	rd_run c-group group --container /dev/vfio/vfio --module iommufd
	rd_run c-mix mix --container /dev/vfio/vfio --module iommufd
	rm /dev/vfio/vfio && mv /dev/vfio/vfio.type1 /dev/vfio/vfio
	rd_run type1-group group --container /dev/vfio/vfio --module vfio_iommu_type1
	# The legacy path gives the same results on iommufd's compat layer as
	# on type1, but for what C lacks (the container's dirty tracking).
	rd_check "group path: C iommufd compat results equal type1's, but for C's skips" \
		rd_same_but_skipped /tmp/rd-c-group.ktap /tmp/rd-type1-group.ktap
	rd_check "rmmod vfio-pci, vfio-pci-core, vfio_iommu_type1, vfio, irqbypass" rd_unload_vfio
	rd_check "no vfio module or node left" rd_vfio_gone
	rd_check "rmmod iommufd (C) after vfio" unload_c
	rd_check "/dev/iommu gone after unload" test ! -e /dev/iommu
	# The same vfio modules, unmodified, on iommufd_rs.
	rd_check "insmod iommufd_rs and iommufd_rs_vfio for vfio" rd_load_rust_vfio
	rd_check "insmod vfio-pci and the rest on iommufd_rs" rd_load_vfio
	rd_run rs-cdev cdev --iommufd /dev/iommu --module iommufd_rs
	mv /dev/vfio/vfio /dev/vfio/vfio.type1 && ln -s /dev/iommu /dev/vfio/vfio
	rd_run rs-group group --container /dev/vfio/vfio --module iommufd_rs
	rd_run rs-mix mix --container /dev/vfio/vfio --module iommufd_rs
	rm /dev/vfio/vfio && mv /dev/vfio/vfio.type1 /dev/vfio/vfio
	local p
	for p in cdev mix; do
		rd_check "$p path: iommufd_rs results equal C iommufd's" \
			cmp -s /tmp/rd-c-$p.ktap /tmp/rd-rs-$p.ktap
	done
	# The legacy container, dirty tracking included, is type1's.
	rd_check "group path: iommufd_rs results equal type1's" \
		cmp -s /tmp/rd-type1-group.ktap /tmp/rd-rs-group.ktap
	rd_check "rmmod the vfio modules on iommufd_rs" rd_unload_vfio
	rd_check "rmmod iommufd_rs_vfio, then iommufd_rs" rd_unload_rust_vfio
	rd_check "/dev/iommu gone after iommufd_rs's unload" test ! -e /dev/iommu
	dmesg -n "$printk"
	echo "# real devices took $(($(date +%s) - t0)) s"
	echo "real devices: $rd_pass passed, $rd_fail failed"
}

[ "${rd_functions_only:-0}" = 1 ] || section real-devices real_devices
