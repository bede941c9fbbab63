#!/bin/bash
# make bench: boot once, measure C iommufd and iommufd_rs alternately with
# the same workload binary, and print median ratios (Rust time / C time).
. "$(dirname "$0")/lib.sh"

bash "$REPO/scripts/setup-root.sh"
CLIPPY=0 bash "$REPO/scripts/build-module.sh" >/dev/null
bash "$REPO/scripts/build-userspace.sh" >/dev/null
log "booting the test VM (TCG) for benchmarks"
VM_LOG=$CACHE/bench-vm.log bash "$REPO/scripts/vm.sh" "$REPO/scripts/guest/bench.sh" >/dev/null || true
python3 "$REPO/scripts/bench.py" "$CACHE/bench-vm.log" tcg
