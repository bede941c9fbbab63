#!/bin/bash
# make fuzz SEED=.. STEPS=..: the differential fuzzer, C iommufd vs iommufd_rs.
# FUZZ_TRACE, FUZZ_FAILURES, FUZZ_STRICT, FUZZ_SHOW, FUZZ_PROBE, FUZZ_SLOW and FUZZ_ECHO pass through (see iommufd_fuzz.rs).
. "$(dirname "$0")/lib.sh"

# SEED and STEPS come from the environment (make fuzz SEED=.. STEPS=..),
# or as arguments.
seed=${SEED:-${1:-1}} steps=${STEPS:-${2:-20000}}
build_all
guest=$(mktemp)
trap 'rm -f "$guest"' EXIT
{ echo "FUZZ_SEED=$seed FUZZ_STEPS=$steps FUZZ_TRACE=${FUZZ_TRACE:-0} FUZZ_FAILURES=${FUZZ_FAILURES:-0} FUZZ_STRICT=${FUZZ_STRICT:-} FUZZ_SHOW=${FUZZ_SHOW:-} FUZZ_PROBE=${FUZZ_PROBE:-} FUZZ_SLOW=${FUZZ_SLOW:-} FUZZ_ECHO=${FUZZ_ECHO:-}"; cat "$REPO/scripts/guest/fuzz.sh"; } >"$guest"
VM_LOG=$CACHE/fuzz-vm.log bash "$REPO/scripts/vm.sh" "$guest" >/dev/null || true
sed -n '/##BEGIN fuzz/,/##END fuzz/p' "$CACHE/fuzz-vm.log" | grep -v '^##'
grep -q '^ok 1 fuzz' "$CACHE/fuzz-vm.log"
