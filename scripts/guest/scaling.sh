# make bench, scaling part, in the guest: pair cost against area count.
load_c && section scaling /bin/iommufd_bench c scaling && unload_c
load_rust && section scaling /bin/iommufd_bench rust scaling && unload_rust
