#!/bin/bash
# make bench: boot once, measure C iommufd and iommufd_rs alternately with
# the same workload binary, and print median ratios (Rust time / C time).
. "$(dirname "$0")/lib.sh"

build_all
# Two clocks: TCG wall time (noisy), and -icount, where guest time is the
# number of instructions executed (deterministic).
log "booting the test VM (TCG, wall clock) for benchmarks"
VM_LOG=$CACHE/bench-vm.log bash "$REPO/scripts/vm.sh" "$REPO/scripts/guest/bench.sh" >/dev/null || true
python3 "$REPO/scripts/bench.py" "$CACHE/bench-vm.log" wall
log "booting the test VM (TCG, -icount) for benchmarks"
VM_ICOUNT=1 VM_LOG=$CACHE/bench-icount-vm.log bash "$REPO/scripts/vm.sh" "$REPO/scripts/guest/bench.sh" >/dev/null || true
python3 "$REPO/scripts/bench.py" "$CACHE/bench-icount-vm.log" icount

# Scaling, 1 to 1,000,000 areas, -icount clock: CSV and plot under docs/.
log "booting the test VM (TCG, -icount) for the scaling curve"
VM_ICOUNT=1 VM_LOG=$CACHE/scaling-vm.log bash "$REPO/scripts/vm.sh" "$REPO/scripts/guest/scaling.sh" >/dev/null || true
mkdir -p "$REPO/docs"
cp "$CACHE/scaling-vm.log" "$ROOT/build/scaling-vm.log"
in_root python3 "$ROOT_REPO/scripts/plot_scaling.py" /build/scaling-vm.log \
	"$ROOT_REPO/docs/scaling.csv" "$ROOT_REPO/docs/scaling.png"
