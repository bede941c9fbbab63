# make fuzz, in the guest: C iommufd at /dev/iommu and iommufd_rs at
# /dev/iommu_rs, loaded together; the same seeded ioctl sequence on both.
load_c || exit 1
load_rust devname=iommu_rs || exit 1
FUZZ_TRACE=${FUZZ_TRACE:-0} FUZZ_FAILURES=${FUZZ_FAILURES:-0} section fuzz /bin/iommufd_fuzz "${FUZZ_SEED:-1}" "${FUZZ_STEPS:-20000}"
unload_rust
unload_c
