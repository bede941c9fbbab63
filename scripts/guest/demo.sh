# make run, in the guest: load the module and run the demo.
load_rust || exit 1
echo "iommufd_rs loaded: $(ls -l /dev/iommu)"
/bin/iommufd_demo
rc=$?
unload_rust && echo "iommufd_rs unloaded"
exit $rc
