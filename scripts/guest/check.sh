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
section upstream-rust upstream iommufd
section failnth-rust upstream iommufd_fail_nth
section guest pass_fail "rmmod iommufd_rs after the tests" unload_rust
section guest pass_fail "/dev/iommu gone after unload" test ! -e /dev/iommu
section guest pass_fail "devname= names the node" load_rust devname=iommu_rs_alt
section guest pass_fail "node /dev/iommu_rs_alt exists" test -c /dev/iommu_rs_alt
section guest pass_fail "rmmod after devname=" unload_rust
section dmesg dmesg
