# make check-debug, in the guest, after everything in check.sh: a longer
# fuzz run, the upstream suite once more, then a kmemleak scan with every
# module unloaded and every file closed.
load_c && load_rust devname=iommu_rs && {
	section fuzz /bin/iommufd_fuzz 101 20000
	unload_rust
	unload_c
}
load_rust && {
	section upstream-rust upstream iommufd
	unload_rust
}
section guest pass_fail "kmemleak is active" test -w /sys/kernel/debug/kmemleak
echo clear >/sys/kernel/debug/kmemleak
echo scan >/sys/kernel/debug/kmemleak
sleep 1
echo scan >/sys/kernel/debug/kmemleak
section kmemleak cat /sys/kernel/debug/kmemleak
section dmesg dmesg
