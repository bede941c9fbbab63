#!/bin/bash
# Boot the test kernel in QEMU with a busybox initramfs and run SCRIPT as
# the guest's test program. Prints the guest console, writes it to
# $CACHE/vm.log (or VM_LOG), and exits with SCRIPT's exit status
# (124 on timeout, 125 if the guest died without reporting one).
#
# The initramfs holds iommufd_rs.ko, C iommufd.ko (+ iommu_amdv1.ko), our
# test programs and the upstream selftests. Environment:
#   VM_TIMEOUT  seconds before the guest is killed (default 1200)
#   VM_MEM      guest memory (default 6G: 2 GiB of it is reserved hugetlb)
#   IOMMUFD_RS_KVM=1  use KVM instead of TCG (KVM hung at boot here)
#   VM_MACHINE  QEMU machine (default q35: an emulated Intel IOMMU, then
#               three edu devices: one alone at 00:02.0, and functions 0 and
#               1 of slot 3, which share an IOMMU group); any other machine
#               (e.g. pc, the old i440fx) gets neither
#   VM_ICOUNT=1 guest time counts executed instructions (1 ns each), so
#               timings are deterministic instruction counts
#   VM_QEMU_ARGS extra QEMU arguments, as paths inside the build root
#               (make profile passes its TCG plugin this way)
#   PROD_MODULE_KO  the production module, as /lib/modules/iommufd_rs_prod.ko
#   VM_NAME     names this VM's initramfs, so that several VMs can boot at
#               once (make fuzz-campaign runs two)
#   VM_WITH_QEMU=1  the build root's qemu-system-x86_64 goes into the guest
#               too (guest/qemu-client.sh runs it on vfio-pci): the binary,
#               the libraries ldd names with their loader, and the two
#               firmware files a q35 machine with -nodefaults loads
#               (+22 MB compressed)
. "$(dirname "$0")/lib.sh"

script=${1:?usage: vm.sh GUEST_SCRIPT}
[ -f "$script" ] || die "no such guest script: $script"
kdir=$(bash "$REPO/scripts/build-kernel.sh")
module=${MODULE_KO:-$REPO/iommufd/iommufd_rs.ko}
[ -f "$module" ] || die "module not built: $module (run scripts/build-module.sh)"
[ -d "$ROOT/build/guest-bin" ] || die "guest programs not built (run scripts/build-userspace.sh)"
log_file=${VM_LOG:-$CACHE/vm.log}

initrd=initramfs${VM_NAME:+-$VM_NAME}
stage=$ROOT/build/$initrd
rm -rf "$stage"
mkdir -p "$stage"/{bin,lib/modules,proc,sys,dev,tmp,sbin,usr/bin,usr/sbin}
cp "$ROOT/bin/busybox" "$stage/bin/busybox"
cp "$module" "$stage/lib/modules/iommufd_rs.ko"
# The other modules built beside it: the shim that gives iommufd_rs's
# in-kernel API the names vfio links to, and test modules.
for ko in "$(dirname "$module")"/*.ko; do
	[ "$ko" = "$module" ] || cp "$ko" "$stage/lib/modules/"
done
# The production build (CONFIG_IOMMUFD_RS_TEST=n), if one is given.
[ -z "${PROD_MODULE_KO:-}" ] || cp "$PROD_MODULE_KO" "$stage/lib/modules/iommufd_rs_prod.ko"
for ko in drivers/iommu/iommufd/iommufd.ko drivers/iommu/generic_pt/fmt/iommu_amdv1.ko; do
	[ -f "$ROOT$kdir/$ko" ] && cp "$ROOT$kdir/$ko" "$stage/lib/modules/"
done
# vfio, its PCI driver and type1 (the reference), and the mdev sample.
for ko in virt/lib/irqbypass.ko drivers/vfio/vfio.ko drivers/vfio/vfio_iommu_type1.ko \
	drivers/vfio/pci/vfio-pci-core.ko drivers/vfio/pci/vfio-pci.ko \
	drivers/vfio/mdev/mdev.ko samples/vfio-mdev/mtty.ko; do
	if [ -f "$ROOT$kdir/$ko" ]; then cp "$ROOT$kdir/$ko" "$stage/lib/modules/"; fi
done
cp "$ROOT/build/guest-bin/"* "$stage/bin/"
# Guest scripts that others source (/guest/real-devices.sh).
mkdir -p "$stage/guest"
cp "$REPO/scripts/guest/"*.sh "$stage/guest/"
cat "$REPO/scripts/guest/common.sh" "$script" >"$stage/test.sh"
if [ "${VM_WITH_QEMU:-0}" = 1 ]; then
	in_root /bin/bash -c '
		set -e
		stage=$1 qemu=/usr/bin/qemu-system-x86_64
		put() { mkdir -p "$stage${1%/*}"; cp -L "$1" "$stage$1"; }
		put $qemu
		for lib in $(ldd $qemu | grep -o "/[^ ]*"); do put "$lib"; done
		put /usr/share/seabios/bios-256k.bin
		put /usr/share/qemu/kvmvapic.bin
	' put-qemu "/build/$initrd"
fi
cat >"$stage/init" <<'EOF_INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
echo
cd /
sh /test.sh
echo "IOMMUFD_RS_EXIT=$?"
sync
reboot -f
EOF_INIT
chmod +x "$stage/init" "$stage/test.sh"

# VM_CPU: the TCG CPU model (make bench clears ERMS, see bench.sh).
accel="-accel tcg -cpu ${VM_CPU:-max}"
[ "${IOMMUFD_RS_KVM:-0}" = 1 ] && accel="-enable-kvm -cpu host"
[ "${VM_ICOUNT:-0}" = 1 ] && accel="$accel -icount shift=0,align=off,sleep=off"
# The IOMMU must come before the devices it translates for.
machine=${VM_MACHINE:-q35}
if [ "$machine" = q35 ]; then
	irqchip=
	[ "${IOMMUFD_RS_KVM:-0}" = 1 ] && irqchip=,kernel-irqchip=split
	machine="-M q35$irqchip -device intel-iommu,intremap=on,caching-mode=on"
	machine="$machine -device edu,addr=2.0 -device edu,addr=3.0,multifunction=on -device edu,addr=3.1"
else
	machine="-M $machine"
fi
set +e
in_root /bin/bash -c "
	cd /build/$initrd && find . | cpio -o -H newc --quiet | gzip -1 >/build/$initrd.cpio.gz
	exec timeout --foreground ${VM_TIMEOUT:-1200} qemu-system-x86_64 $accel $machine \
		-m ${VM_MEM:-6G} -smp 2 -nodefaults -nographic -no-reboot -monitor none -serial stdio \
		-kernel $kdir/arch/x86/boot/bzImage -initrd /build/$initrd.cpio.gz \
		-append 'console=ttyS0 quiet panic=-1 hugepagesz=2M hugepages=1024' ${VM_QEMU_ARGS:-}
" </dev/null | tr -d '\r' | sed -u 's/\x1b\[[0-9;?]*[a-zA-Z]//g; s/\x1bc//g' | tee "$log_file"
qemu_rc=${PIPESTATUS[0]}
set -e

[ "$qemu_rc" = 124 ] && { log "guest timed out after ${VM_TIMEOUT:-1200} s"; exit 124; }
rc=$(sed -n 's/^IOMMUFD_RS_EXIT=\([0-9]*\)$/\1/p' "$log_file" | tail -1)
[ -n "$rc" ] || { log "guest ended without reporting an exit status"; exit 125; }
exit "$rc"
