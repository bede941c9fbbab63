#!/bin/bash
# make conformance: the upstream tools/testing/selftests/iommu programs,
# unmodified, against C iommufd and against iommufd_rs in one boot.
. "$(dirname "$0")/lib.sh"

build_all
log "booting the test VM (TCG); the upstream suite runs twice"
VM_LOG=$CACHE/conformance-vm.log bash "$REPO/scripts/vm.sh" "$REPO/scripts/guest/conformance.sh" >/dev/null || true
python3 "$REPO/scripts/results.py" conformance "$CACHE/conformance-vm.log"
