#!/bin/bash
# make run: set everything up, boot the VM with iommufd_rs loaded and run
# the demo (allocate, list and destroy IOAS objects).
. "$(dirname "$0")/lib.sh"

build_all
VM_LOG=$CACHE/run-vm.log bash "$REPO/scripts/vm.sh" "$REPO/scripts/guest/demo.sh"
