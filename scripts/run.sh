#!/bin/bash
# make run: set everything up, boot the VM with iommufd_rs loaded and run
# the demo (allocate, list and destroy IOAS objects).
. "$(dirname "$0")/lib.sh"

bash "$REPO/scripts/setup-root.sh"
CLIPPY=0 bash "$REPO/scripts/build-module.sh" >/dev/null
bash "$REPO/scripts/build-userspace.sh" >/dev/null
VM_LOG=$CACHE/run-vm.log bash "$REPO/scripts/vm.sh" "$REPO/scripts/guest/demo.sh"
