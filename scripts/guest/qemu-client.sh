# QEMU as vfio's client, in the guest: the build root's qemu-system-x86_64
# (put into the initramfs by vm.sh with VM_WITH_QEMU=1) assigns the edu that
# is alone in its IOMMU group (0000:00:02.0) to a q35 machine through
# vfio-pci, in two ways per provider:
#  - legacy: the type1 container API, /dev/vfio/vfio a symlink to /dev/iommu
#    (-device vfio-pci,host=...);
#  - native: -object iommufd: QEMU opens /dev/iommu itself and binds the
#    vfio cdev (BIND_IOMMUFD, GET_HW_INFO, HWPT_ALLOC, attach, IOAS_MAP);
# on C iommufd, then on iommufd_rs (iommufd_rs_vfio.ko gives vfio its API
# under iommufd.ko's names), whose result lines must equal C's; and once on
# vfio's own type1 container, the reference for the legacy run.
#
# No guest OS runs: QEMU stops at -S and answers QMP (query-pci must list the
# assigned device) while its RAM is mapped, then quits. Each run must exit 0
# with no error in its output, pin at least the guest RAM's pages while it is
# stopped (nr_foll_pin_acquired - nr_foll_pin_released in /proc/vmstat),
# leave nothing pinned after it exits, and leave the provider module's
# refcount as it found it. Ends with `qemu client: N passed, M failed`.
#
# The pin count and QEMU's iommufd_* trace (each ioctl of its iommufd
# backend, with IDs and result; host addresses masked) go into each run's
# .ktap, so they too must equal C's. QC_QEMU_ARGS adds QEMU arguments to
# every run, for debugging: e.g. "-trace vfio_*" (more trace lines, which
# the comparisons then include).
#
# Runs on its own after common.sh (VM_WITH_QEMU=1 vm.sh
# scripts/guest/qemu-client.sh), or sourced from /guest/qemu-client.sh.

qc_pass=0
qc_fail=0
qc_n=0
qc_bdf=0000:00:02.0
# Guest RAM of each QEMU, in MiB; at least this many pages must be pinned.
qc_mem=${QC_MEM_MB:-128}
qc_ram_pages=$((qc_mem * 256))

# qc_check NAME CMD...: one result line, counted in the summary and kept in
# the current run's /tmp/qc-TAG.ktap (without its number, so that runs on
# different providers compare line for line).
qc_ktap=/dev/null
qc_check() {
	local name=$1
	shift
	qc_n=$((qc_n + 1))
	if "$@"; then
		echo "ok $qc_n $name"
		echo "ok $name" >>$qc_ktap
		qc_pass=$((qc_pass + 1))
	else
		echo "not ok $qc_n $name"
		echo "not ok $name" >>$qc_ktap
		qc_fail=$((qc_fail + 1))
	fi
}

qc_load_vfio() {
	local m
	for m in irqbypass vfio vfio_iommu_type1 vfio-pci-core vfio-pci; do
		insmod /lib/modules/$m.ko || return 1
	done
}

qc_unload_vfio() {
	local m
	for m in vfio_pci vfio_pci_core vfio_iommu_type1 vfio irqbypass; do
		rmmod $m || return 1
	done
}

# The edu at $qc_bdf on vfio-pci (driver_override, as iommufd_vfio_edu
# does), alone in its IOMMU group.
qc_bind() {
	local dir=/sys/bus/pci/devices/$qc_bdf
	if [ "$(basename "$(readlink $dir/driver)")" != vfio-pci ]; then
		[ ! -e $dir/driver ] || echo $qc_bdf >$dir/driver/unbind
		echo vfio-pci >$dir/driver_override
		echo $qc_bdf >/sys/bus/pci/drivers_probe
	fi
	[ "$(basename "$(readlink $dir/driver)")" = vfio-pci ] &&
		[ "$(ls $dir/iommu_group/devices | wc -l)" = 1 ]
}

# /dev/vfio/vfio becomes a symlink to /dev/iommu, and back.
qc_compat_on() { mv /dev/vfio/vfio /dev/vfio/vfio.type1 && ln -s /dev/iommu /dev/vfio/vfio; }
qc_compat_off() { rm /dev/vfio/vfio && mv /dev/vfio/vfio.type1 /dev/vfio/vfio; }

# Sets pin_acq and pin_rel from /proc/vmstat, per-CPU counts folded in.
qc_pins() {
	# Only SMP kernels keep per-CPU differences (and this file).
	[ ! -e /proc/sys/vm/stat_refresh ] || echo 1 >/proc/sys/vm/stat_refresh
	eval "$(awk '$1 == "nr_foll_pin_acquired" { a = $2 } $1 == "nr_foll_pin_released" { r = $2 }
		END { printf "pin_acq=%d pin_rel=%d\n", a, r }' /proc/vmstat)"
}

# The refcounts of the given modules, space-separated.
qc_refcnt() {
	local m out=
	for m in "$@"; do out="$out${out:+ }$(cat /sys/module/$m/refcnt)"; done
	echo "$out"
}

qc_now() { cut -d' ' -f1 /proc/uptime; }
qc_secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# QEMU (pid qc_pid) is alive and not a zombie.
qc_alive() { [ -r /proc/$qc_pid/stat ] && ! grep -q ') Z ' /proc/$qc_pid/stat; }

# qc_wait FILE PATTERN COUNT: until FILE has COUNT lines matching PATTERN;
# fails if QEMU ends first or QC_WAIT seconds (default 240) pass.
qc_wait() {
	local i=0 max=$((${QC_WAIT:-240} * 10)) n
	while :; do
		n=$(grep -c "$2" "$1" 2>/dev/null)
		[ "${n:-0}" -lt "$3" ] || return 0
		qc_alive || return 1
		i=$((i + 1))
		[ $i -le $max ] || return 1
		sleep 0.1
	done
}

# qc_run TAG MODE MODULES QEMU-ARGS...: one QEMU run; MODULES (the provider,
# space-separated) must have their refcounts back after it. Result lines
# are kept in /tmp/qc-TAG.ktap.
qc_run() {
	local tag=$1 mode=$2 mods=$3
	shift 3
	local out=/tmp/qc-$tag.qmp err=/tmp/qc-$tag.err fifo=/tmp/qc-$tag.in trace=/tmp/qc-$tag.trace
	local refs0 refs1 refs2 acq0 rel0 acq1 rel1 t0 t1 t2 answered=0 rc lines pinned
	qc_ktap=/tmp/qc-$tag.ktap
	: >$qc_ktap
	echo "# $tag: qemu-system-x86_64 -m ${qc_mem}M $*"
	lines=$(dmesg | wc -l)
	refs0=$(qc_refcnt $mods)
	qc_pins
	acq0=$pin_acq rel0=$pin_rel
	rm -f $fifo $trace
	mkfifo $fifo
	# It exists before QEMU's shell gets to it, for qc_wait.
	: >$out
	t0=$(qc_now)
	# QEMU's iommufd backend traces each ioctl with its result (the legacy
	# container has no such trace points).
	timeout -s KILL "${QC_TIMEOUT:-300}" qemu-system-x86_64 -S -nodefaults -display none \
		-machine q35 -accel tcg -m ${qc_mem}M -qmp stdio -trace 'iommufd_*' -D $trace \
		"$@" ${QC_QEMU_ARGS:-} <$fifo >$out 2>$err &
	qc_pid=$!
	# QEMU may be gone before the last write: a write error, not a SIGPIPE.
	trap '' PIPE
	exec 3>$fifo
	echo '{"execute":"qmp_capabilities"}' >&3
	echo '{"execute":"query-pci"}' >&3
	# Commands are answered once the machine is built: devices realized,
	# guest RAM mapped for DMA.
	qc_wait $out '"return"' 2 && answered=1
	t1=$(qc_now)
	qc_pins
	acq1=$pin_acq rel1=$pin_rel
	refs1=$(qc_refcnt $mods)
	echo '{"execute":"quit"}' >&3 2>/dev/null
	exec 3>&-
	trap - PIPE
	[ $answered = 1 ] || kill -KILL $qc_pid 2>/dev/null
	wait $qc_pid
	rc=$?
	t2=$(qc_now)
	qc_pins
	refs2=$(qc_refcnt $mods)
	rm -f $fifo
	pinned=$((acq1 - acq0 - (rel1 - rel0)))
	echo "# $tag: QMP answered after $(qc_secs $t0 $t1) s, exit after $(qc_secs $t1 $t2) s more: $(qc_secs $t0 $t2) s in all"
	echo "# $tag: pinned while stopped: $pinned pages (acquired $((acq1 - acq0)), released $((rel1 - rel0))); after exit: acquired $((pin_acq - acq0)), released $((pin_rel - rel0))"
	echo "# $tag: refcount of $mods: $refs0 before, $refs1 while stopped, $refs2 after"
	sed 's/^/# stderr: /' $err
	dmesg | tail -n +$((lines + 1)) | sed -E 's/^(\[[ 0-9.]*\] )?/# dmesg: /'
	# What must be equal between providers goes into the .ktap too: the
	# pin count, and the trace without pid, time and host addresses.
	echo "# pinned while stopped: $pinned pages" | tee -a $qc_ktap
	[ ! -f $trace ] || sed -E 's/^[0-9]+@[0-9.]+: *//; s/addr=0x[0-9a-f]+/addr=HVA/; s/^/# trace: /' $trace |
		tee -a $qc_ktap
	qc_check "$mode: QEMU realizes vfio-pci and answers QMP" [ $answered = 1 ]
	qc_check "$mode: query-pci lists the assigned edu (1234:11e8)" \
		grep -q '"qdev_id": "edu0".*"vendor": 4660\|"vendor": 4660.*"qdev_id": "edu0"' $out
	qc_check "$mode: the guest RAM ($qc_ram_pages pages) is pinned while QEMU is stopped" \
		[ $pinned -ge $qc_ram_pages ]
	qc_check "$mode: the provider is held while QEMU runs" [ "${refs1%% *}" -gt "${refs0%% *}" ]
	qc_check "$mode: QEMU exits with status 0" [ $rc = 0 ]
	qc_check "$mode: no error in QEMU's output" sh -c "! grep -qi error $out $err"
	qc_check "$mode: nothing on QEMU's stderr but its known warnings" \
		sh -c "! grep -vE '$qc_known_warnings' $err | grep -q ."
	qc_check "$mode: nothing left pinned after QEMU exits" [ $((pin_acq - acq0)) = $((pin_rel - rel0)) ]
	qc_check "$mode: the provider's refcount is back to its value before" [ "$refs2" = "$refs0" ]
	qc_ktap=/dev/null
}

# What QEMU says on every provider, type1 included: this kernel's vfio-pci
# exports no dma-buf (no CONFIG_PCI_P2PDMA), and the edu has neither FLR nor
# PM reset, nor a bus to reset (twice: realize and machine reset).
qc_known_warnings='warning: VFIO dma-buf not supported in kernel, using mmap fallback|vfio: Cannot reset device [0-9a-f:.]*, no available reset mechanism\.'

qc_legacy_args="-device vfio-pci,host=$qc_bdf,id=edu0"
qc_native_args="-object iommufd,id=iommufd0 -device vfio-pci,host=$qc_bdf,iommufd=iommufd0,id=edu0"

qemu_client() {
	local t0=$(date +%s)
	if ! command -v qemu-system-x86_64 >/dev/null; then
		echo "# no qemu-system-x86_64 in this guest (vm.sh VM_WITH_QEMU=1): not tested"
		return
	fi
	if [ "$(cat /sys/bus/pci/devices/$qc_bdf/device 2>/dev/null)" != 0x11e8 ]; then
		echo "# no edu device at $qc_bdf: not tested"
		return
	fi
	qc_check "insmod iommufd (C) for vfio" load_c
	qc_check "insmod irqbypass, vfio, vfio_iommu_type1, vfio-pci-core, vfio-pci" qc_load_vfio
	qc_check "$qc_bdf on vfio-pci, alone in its IOMMU group" qc_bind
	qc_run type1-legacy legacy vfio_iommu_type1 $qc_legacy_args
	qc_compat_on
	qc_run c-legacy legacy iommufd $qc_legacy_args
	qc_compat_off
	qc_run c-native native iommufd $qc_native_args
	qc_check "legacy: C iommufd's results equal type1's" cmp -s /tmp/qc-c-legacy.ktap /tmp/qc-type1-legacy.ktap
	qc_check "rmmod the vfio modules" qc_unload_vfio
	qc_check "rmmod iommufd (C) after vfio" unload_c
	# The same vfio modules, unmodified, on iommufd_rs.
	qc_check "insmod iommufd_rs and iommufd_rs_vfio for vfio" \
		sh -c 'insmod /lib/modules/iommufd_rs.ko && insmod /lib/modules/iommufd_rs_vfio.ko'
	qc_check "insmod vfio-pci and the rest on iommufd_rs" qc_load_vfio
	qc_check "$qc_bdf on vfio-pci, alone in its IOMMU group (iommufd_rs)" qc_bind
	qc_compat_on
	qc_run rs-legacy legacy "iommufd_rs iommufd_rs_vfio" $qc_legacy_args
	qc_compat_off
	qc_run rs-native native "iommufd_rs iommufd_rs_vfio" $qc_native_args
	local p
	for p in legacy native; do
		qc_check "$p: iommufd_rs results equal C iommufd's" cmp -s /tmp/qc-c-$p.ktap /tmp/qc-rs-$p.ktap
	done
	qc_check "rmmod the vfio modules on iommufd_rs" qc_unload_vfio
	qc_check "rmmod iommufd_rs_vfio, then iommufd_rs" sh -c 'rmmod iommufd_rs_vfio && rmmod iommufd_rs'
	qc_check "/dev/iommu gone after iommufd_rs's unload" test ! -e /dev/iommu
	echo "# qemu client took $(($(date +%s) - t0)) s"
	echo "qemu client: $qc_pass passed, $qc_fail failed"
}

section qemu-client qemu_client
