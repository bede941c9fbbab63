# make bench's lines on a real IOMMU domain, in the guest: IOAS_MAP +
# IOAS_UNMAP on the VT-d domain of an edu bound to vfio-pci, its cdev
# attached to an IOAS (iommufd_vfio_edu bench IMPL, which binds the edu
# functions to vfio-pci itself). Each round runs it on C iommufd, then on
# iommufd_rs with iommufd_rs_vfio.ko giving vfio its names; the vfio
# modules are loaded on top of each provider and everything is unloaded
# after each run, so another section can follow in the same boot.
#   real_rounds  alternations of C and Rust (default 1)
# Sourced after common.sh; the raw lines are in `bench` sections, as
# guest/bench.sh prints them, for scripts/bench.py.

# real-devices.sh's load and unload helpers, without its tests.
rd_functions_only=1
. /guest/real-devices.sh
rd_functions_only=0

rb_names="real_map_unmap_4k real_map_unmap_1g_4k_pages real_map_unmap_1g_thp real_map_unmap_1g_hugetlb"
rb_failed=0

# rb_error IMPL WHY: an error line for each workload, when the program
# cannot run at all.
rb_error() {
	local name
	for name in $rb_names; do
		echo "raw impl=$1 name=$name error=$2"
	done
}

# rb_bench IMPL: the program on the provider loaded, bounded in time; its
# exit status in rb_rc (section gives its own). It exits 1 if a line is an
# error.
# With RB_MODE=profile, the program's profile mode instead (make profile
# WORKLOAD=real_...), after the provider's symbols.
rb_rc=0
rb_bench() {
	if [ "${RB_MODE:-bench}" = profile ]; then
		section "kallsyms_$1" grep -E '\[(iommufd|iommufd_rs|iommufd_rs_vfio)\]' /proc/kallsyms
	fi
	timeout -s KILL "${RB_TIMEOUT:-900}" /bin/iommufd_vfio_edu "${RB_MODE:-bench}" "$1"
	rb_rc=$?
	[ "$rb_rc" = 0 ] || echo "# iommufd_vfio_edu ${RB_MODE:-bench} $1: exit status $rb_rc"
}

# Unloads whichever vfio modules are loaded (after a partial load).
rb_unload_loaded_vfio() {
	local m
	for m in vfio_pci vfio_pci_core vfio_iommu_type1 vfio irqbypass; do
		[ ! -e /sys/module/$m ] || rmmod $m
	done
}

# rb_provider IMPL LOAD UNLOAD: LOAD the provider, vfio on top, the
# bench, then vfio and the provider unloaded again, nothing left. Returns
# 1 if the bench reported an error, 2 if modules may be left behind (no
# further run can load).
rb_provider() {
	local imp=$1 load=$2 unload=$3 t0
	t0=$(cut -d' ' -f1 /proc/uptime)
	# A provider or vfio that failed to load may have left some of its
	# modules: stop there.
	if ! $load; then
		section bench rb_error "$imp" "$load failed"
		return 2
	fi
	if ! rd_load_vfio; then
		section bench rb_error "$imp" "insmod of the vfio modules failed"
		rb_unload_loaded_vfio
		rd_vfio_gone && $unload && return 1
		return 2
	fi
	local rc=0
	section bench rb_bench "$imp"
	[ "$rb_rc" = 0 ] || rc=1
	if ! rd_unload_vfio; then
		echo "# rmmod of the vfio modules failed after the $imp run"
		return 2
	fi
	if ! $unload; then
		echo "# $unload failed after the $imp run"
		return 2
	fi
	if ! rd_vfio_gone || [ -e /dev/iommu ]; then
		echo "# a module or node stayed after the $imp run"
		return 2
	fi
	echo "# real-domain bench $imp: $(awk -v a="$t0" '{ printf "%.1f", $1 - a }' /proc/uptime) s of guest time"
	return $rc
}

bench_real() {
	local printk i=0 rc p
	printk=$(cut -f1 /proc/sys/kernel/printk)
	if ! grep -qx 0x11e8 /sys/bus/pci/devices/*/device 2>/dev/null; then
		section bench rb_error c "no edu device in this machine"
		section bench rb_error rust "no edu device in this machine"
		return 1
	fi
	# Kernel messages (vfio binds, a DMAR fault if the check fails) stay
	# in the log, off the console, where they would split raw lines.
	dmesg -n 1
	while [ $i -lt "${real_rounds:-1}" ]; do
		i=$((i + 1))
		for p in "c load_c unload_c" "rust rd_load_rust_vfio rd_unload_rust_vfio"; do
			set -- $p
			rb_provider "$@"
			rc=$?
			[ "$rc" = 0 ] || rb_failed=$((rb_failed + 1))
			if [ "$rc" = 2 ]; then
				dmesg -n "$printk"
				echo "# real-domain bench stopped: modules may be left loaded"
				return 1
			fi
		done
	done
	dmesg -n "$printk"
	echo "# real-domain bench: ${real_rounds:-1} round(s), $rb_failed run(s) failed"
	[ "$rb_failed" = 0 ]
}

bench_real
