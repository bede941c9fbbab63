# make conformance, in the guest: the upstream selftests against C iommufd,
# then against iommufd_rs, in the same boot.
section guest pass_fail "insmod iommufd (C)" load_c
section upstream-c upstream iommufd
section failnth-c upstream iommufd_fail_nth
section guest pass_fail "rmmod iommufd (C)" unload_c
section guest pass_fail "insmod iommufd_rs" load_rust
section upstream-rust upstream iommufd
section failnth-rust upstream iommufd_fail_nth
section guest pass_fail "rmmod iommufd_rs" unload_rust
section dmesg dmesg
