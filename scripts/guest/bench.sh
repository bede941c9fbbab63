# make bench, in the guest: the same workload binary against C iommufd and
# iommufd_rs, alternating, in one boot. scripts/bench.sh sets, before this:
#   core_rounds    rounds of the small workloads (no domain)
#   domain_rounds  rounds of the domain and 1 GiB workloads
#   real_rounds    rounds of the real-domain lines (guest/bench-real.sh:
#                  edu on vfio-pci behind the emulated VT-d); 0: none
#   scaling        1: the scaling curve too, once per module
stamp() { echo "bench-stamp $1 $(cut -d' ' -f1 /proc/uptime)"; }
alternate() {
	i=0
	while [ $i -lt "$2" ]; do
		i=$((i + 1))
		load_c && section bench /bin/iommufd_bench c "$1" && unload_c
		load_rust && section bench /bin/iommufd_bench rust "$1" && unload_rust
	done
	stamp "$1"
}
# Whether the CPU model has ERMS (bench.sh clears it).
echo "bench-cpu erms=$(grep -cw erms /proc/cpuinfo)"
stamp start
alternate core "${core_rounds:-3}"
alternate domain "${domain_rounds:-3}"
if [ "${real_rounds:-0}" -gt 0 ]; then
	. /guest/bench-real.sh
	stamp real
fi
if [ "${scaling:-0}" = 1 ]; then
	load_c && section scaling /bin/iommufd_bench c scaling && unload_c
	load_rust && section scaling /bin/iommufd_bench rust scaling && unload_rust
	stamp scaling
fi
