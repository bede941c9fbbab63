#!/bin/bash
# make bench: boot twice, measure C iommufd and iommufd_rs alternately with
# the same workload binary, and print median ratios (Rust time / C time).
. "$(dirname "$0")/lib.sh"

build_all
# Rounds per boot (alternations of C and Rust), overridable.
wall_core=${BENCH_WALL_CORE_ROUNDS:-5}
wall_domain=${BENCH_WALL_DOMAIN_ROUNDS:-3}
icount_core=${BENCH_ICOUNT_CORE_ROUNDS:-1}
icount_domain=${BENCH_ICOUNT_DOMAIN_ROUNDS:-1}
wall_real=${BENCH_WALL_REAL_ROUNDS:-2}
icount_real=${BENCH_ICOUNT_REAL_ROUNDS:-1}

# A guest script: the rounds, then guest/bench.sh.
guest_script() {
	local out=$ROOT/build/bench-$1.sh
	printf 'core_rounds=%s\ndomain_rounds=%s\nreal_rounds=%s\nscaling=%s\n' \
		"$2" "$3" "$4" "$5" >"$out"
	cat "$REPO/scripts/guest/bench.sh" >>"$out"
	echo "$out"
}

# Both boots clear ERMS from the CPU model, so the kernel zeroes pages
# with `rep stosq` rather than `rep stosb`: under -icount every iteration
# of a rep counts, and touching each GiB of test memory costs 8 times fewer
# of them (the guest runs about a third shorter). It also makes the -icount
# count of page zeroing inside the calls closer to what hardware pays.
export VM_CPU=max,erms=off
# Two clocks: TCG wall time (noisy: more rounds, and the spread is shown),
# and -icount, where guest time is the number of instructions executed
# (deterministic: fewer rounds lose nothing). The real-domain lines (edu on
# vfio-pci behind the emulated VT-d) run in both; the scaling curve rides
# on the -icount boot.
log "booting the test VM (TCG, wall clock) for benchmarks"
VM_LOG=$CACHE/bench-vm.log bash "$REPO/scripts/vm.sh" \
	"$(guest_script wall "$wall_core" "$wall_domain" "$wall_real" 0)" >/dev/null || true
python3 "$REPO/scripts/bench.py" "$CACHE/bench-vm.log" wall | tee "$CACHE/bench-wall.txt"
log "booting the test VM (TCG, -icount) for benchmarks and the scaling curve"
VM_ICOUNT=1 VM_LOG=$CACHE/bench-icount-vm.log bash "$REPO/scripts/vm.sh" \
	"$(guest_script icount "$icount_core" "$icount_domain" "$icount_real" 1)" >/dev/null || true
python3 "$REPO/scripts/bench.py" "$CACHE/bench-icount-vm.log" icount | tee "$CACHE/bench-icount.txt"

# Scaling, 1 to 1,000,000 areas, -icount clock: CSV and plot under docs/.
mkdir -p "$REPO/docs"
cp "$CACHE/bench-icount-vm.log" "$ROOT/build/scaling-vm.log"
in_root python3 "$ROOT_REPO/scripts/plot_scaling.py" /build/scaling-vm.log \
	"$ROOT_REPO/docs/scaling.csv" "$ROOT_REPO/docs/scaling.png"
# Both clocks side by side, with make profile's rep-as-one count when a
# `make profile WORKLOAD=all` has left one: the README's table.
profile_out=
[ -f "$CACHE/profile-all.txt" ] && profile_out=$CACHE/profile-all.txt
python3 "$REPO/scripts/bench_table.py" "$CACHE/bench-icount.txt" "$CACHE/bench-wall.txt" \
	$profile_out >"$CACHE/bench-table.md"
log "the table of both clocks: $CACHE/bench-table.md"
