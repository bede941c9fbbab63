# make fuzz-campaign, in the guest: seeds one after another, each in a new
# process with new files, C iommufd at /dev/iommu and iommufd_rs at
# /dev/iommu_rs. Stops at the first divergence; starts no seed once guest
# uptime reaches CAMPAIGN_DEADLINE seconds.
load_c || exit 1
load_rust devname=iommu_rs || exit 1
dmesg -c >/dev/null
rc=0
for spec in $CAMPAIGN_SEEDS; do
	seed=${spec%%:*} steps=${spec##*:}
	up=$(cut -d. -f1 /proc/uptime)
	if [ "$up" -ge "$CAMPAIGN_DEADLINE" ]; then
		echo "##SKIPPED $seed $steps"
		continue
	fi
	echo "##SEED $seed $steps"
	FUZZ_TRACE=40 FUZZ_STRICT=${FUZZ_STRICT:-} /bin/iommufd_fuzz "$seed" "$steps" 2>&1 || { rc=1; break; }
done
echo "##SPLATS $(dmesg | grep -cE 'WARNING|BUG|Oops|RIP:|Call Trace')"
echo "##CAMPAIGN_END"
unload_rust || rc=1
unload_c || rc=1
exit $rc
