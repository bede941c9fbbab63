# make check, in the guest: our selftests against C iommufd (to prove their
# expectations), then KUnit and our selftests against iommufd_rs, the
# upstream suite as a ratchet, and clean unloads.
section guest pass_fail "insmod iommufd (C)" load_c
section selftests-c env IOMMUFD_TEST_MODULE=iommufd /bin/iommufd_rs_test
# A bounded differential fuzz run, both modules side by side.
section guest pass_fail "insmod iommufd_rs devname=iommu_rs beside C" load_rust devname=iommu_rs
for seed in 1 2 3 4; do
	section fuzz /bin/iommufd_fuzz $seed 5000
done
section guest pass_fail "rmmod iommufd_rs (fuzz)" unload_rust
section guest pass_fail "rmmod iommufd (C)" unload_c
new_dmesg >/dev/null
section guest pass_fail "insmod iommufd_rs" load_rust
section kunit new_dmesg
section selftests /bin/iommufd_rs_test
section stress /bin/iommufd_stress ${STRESS_SECONDS:-3} 4
section upstream-rust upstream iommufd
section failnth-rust upstream iommufd_fail_nth
section guest pass_fail "rmmod iommufd_rs after the tests" unload_rust
section guest pass_fail "/dev/iommu gone after unload" test ! -e /dev/iommu
# Legacy clients: through a /dev/vfio/vfio symlink to /dev/iommu, then
# through the module's own /dev/vfio/vfio node (vfio_container=1).
section guest pass_fail "insmod iommufd_rs" load_rust
mkdir -p /dev/vfio && ln -s /dev/iommu /dev/vfio/vfio
section selftests env IOMMUFD_COMPAT_NODE=/dev/vfio/vfio /bin/iommufd_rs_test compat_
rm /dev/vfio/vfio
section guest pass_fail "rmmod iommufd_rs" unload_rust
section guest pass_fail "insmod iommufd_rs vfio_container=1" load_rust vfio_container=1
section guest pass_fail "/dev/vfio/vfio is char 10:196 mode 0666" \
	sh -c '[ "$(stat -c "%F %t:%T %a" /dev/vfio/vfio)" = "character special file a:c4 666" ]'
section selftests env IOMMUFD_COMPAT_NODE=/dev/vfio/vfio IOMMUFD_COMPAT_EXPECT_MM=1 /bin/iommufd_rs_test compat_
section guest pass_fail "rmmod iommufd_rs (vfio_container=1)" unload_rust
section guest pass_fail "/dev/vfio/vfio gone after unload" test ! -e /dev/vfio/vfio
# The production build: /dev/iommu without the test interface. No upstream
# case can run on it: every fixture's teardown checks page references with
# IOMMU_TEST_OP_MD_CHECK_REFS.
if [ -f /lib/modules/iommufd_rs_prod.ko ]; then
	section guest pass_fail "insmod iommufd_rs (production build)" insmod /lib/modules/iommufd_rs_prod.ko
	section selftests /bin/iommufd_rs_test production_
	section guest pass_fail "rmmod iommufd_rs (production build)" unload_rust
else
	echo "# no production build given: not tested in this boot"
fi
section guest pass_fail "devname= names the node" load_rust devname=iommu_rs_alt
section guest pass_fail "node /dev/iommu_rs_alt exists" test -c /dev/iommu_rs_alt
section guest pass_fail "rmmod after devname=" unload_rust
# Real devices: vfio-pci and edu behind the emulated Intel IOMMU, through C
# iommufd and through type1.
. /guest/real-devices.sh
# The in-kernel access API as vfio uses it for emulated devices, through
# the kapi_probe.ko test module: C iommufd, then iommufd_rs (equal results).
. /guest/kapi-probe.sh
# QEMU as vfio's client on C iommufd, type1 and iommufd_rs: legacy
# container and native iommufd, guest RAM pinned and released.
. /guest/qemu-client.sh
section dmesg dmesg
