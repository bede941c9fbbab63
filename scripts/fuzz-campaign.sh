#!/bin/bash
# make fuzz-campaign: the differential fuzzer over many seeds, in JOBS VMs at
# once (each running its share of the seeds in turn), within about BUDGET
# seconds of fuzzing per VM. Stops at the first divergence and prints its
# reproduce line; prints how often each operation ran and succeeded, in the
# state it met.
#
#   make fuzz-campaign [SEEDS=48] [STEPS=150000] [FIRST=1]
#   make fuzz-campaign SEED_LIST="90417:300000 271828:300000" [SEEDS=..]
#   JOBS (default 2), BUDGET (default 720 s) tune it; FUZZ_STRICT passes
#   through (see iommufd_fuzz.rs).
. "$(dirname "$0")/lib.sh"

seeds=${SEEDS:-48} steps=${STEPS:-150000} first=${FIRST:-1}
jobs=${JOBS:-2} budget=${BUDGET:-720}
start=$SECONDS
build_all

specs=()
[ -z "${SEED_LIST:-}" ] || read -r -a specs <<<"$SEED_LIST"
# Numbered seeds too, unless only a list was given.
if [ -z "${SEED_LIST:-}" ] || [ -n "${SEEDS:-}" ]; then
	for ((i = 0; i < seeds; i++)); do specs+=("$((first + i)):$steps"); done
fi
[ "${#specs[@]}" -gt 0 ] || die "no seeds"
[ "${#specs[@]}" -ge "$jobs" ] || jobs=${#specs[@]}

tmp=$(mktemp -d)
trap 'pkill -f "initramfs-campaign[0-9]*.cpio.gz" 2>/dev/null || true; rm -rf "$tmp"' EXIT
logs=()
log "fuzz campaign: ${#specs[@]} seeds in $jobs VMs, about $budget s each"
for ((j = 0; j < jobs; j++)); do
	mine=""
	for ((i = j; i < ${#specs[@]}; i += jobs)); do mine+="${specs[i]} "; done
	# The guest's deadline counts from its boot (about 10 s).
	{ echo "CAMPAIGN_SEEDS='$mine' CAMPAIGN_DEADLINE=$((budget + 10)) FUZZ_STRICT='${FUZZ_STRICT:-}'"
	  cat "$REPO/scripts/guest/fuzz-campaign.sh"; } >"$tmp/guest$j.sh"
	logs+=("$CACHE/campaign-$j.log")
	VM_NAME=campaign$j VM_LOG=$CACHE/campaign-$j.log VM_TIMEOUT=$((budget + 600)) \
		bash "$REPO/scripts/vm.sh" "$tmp/guest$j.sh" >/dev/null 2>&1 &
done

# The first divergence anywhere ends the campaign.
while [ -n "$(jobs -rp)" ]; do
	sleep 5
	if grep -qs '^not ok 1 fuzz' "${logs[@]}"; then
		sleep 2
		pkill -f "initramfs-campaign[0-9]*.cpio.gz" 2>/dev/null || true
		break
	fi
done
wait || true
python3 "$REPO/scripts/fuzz_campaign.py" --elapsed $((SECONDS - start)) "${logs[@]}"
