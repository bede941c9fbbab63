# make bench, in the guest: the same workload binary against C iommufd and
# iommufd_rs, alternating, BENCH_ROUNDS times, in one boot.
rounds=${BENCH_ROUNDS:-3}
i=0
while [ $i -lt $rounds ]; do
	i=$((i + 1))
	load_c && section bench /bin/iommufd_bench c && unload_c
	load_rust && section bench /bin/iommufd_bench rust && unload_rust
done
