# make fuzz, in the guest: C iommufd at /dev/iommu and iommufd_rs at
# /dev/iommu_rs, loaded together; the same seeded ioctl sequence on both.
# Then any kernel warning the run left (its first lines), also in the
# fuzz section.
load_c || exit 1
load_rust devname=iommu_rs || exit 1
dmesg -c >/dev/null
FUZZ_TRACE=${FUZZ_TRACE:-0} FUZZ_FAILURES=${FUZZ_FAILURES:-0} FUZZ_STRICT=${FUZZ_STRICT:-} FUZZ_SHOW=${FUZZ_SHOW:-} FUZZ_PROBE=${FUZZ_PROBE:-} FUZZ_SLOW=${FUZZ_SLOW:-} FUZZ_ECHO=${FUZZ_ECHO:-} section fuzz /bin/iommufd_fuzz "${FUZZ_SEED:-1}" "${FUZZ_STEPS:-20000}"
splats=$(dmesg | grep -cE 'WARNING|BUG|Oops|RIP:|Call Trace')
section fuzz sh -c "echo '# kernel splats: $splats'; [ $splats -eq 0 ] || dmesg | grep -m 1 -E -A45 'WARNING|BUG|Oops' | sed 's/^/# /'"
unload_rust
unload_c
