#!/bin/bash
# Build iommufd_rs.ko against the test kernel, inside the build root, with
# clippy on (CLIPPY=0 to skip). Prints the module's path on the host.
. "$(dirname "$0")/lib.sh"

kdir=$(bash "$REPO/scripts/build-kernel.sh")
clippy=${CLIPPY:-1}
in_root make -C "$kdir" M="$ROOT_REPO" LLVM=1 CLIPPY="$clippy" CONFIG_IOMMUFD_RS_TEST=y modules >&2 ||
	die "module build failed"
echo "$REPO/iommufd/iommufd_rs.ko"
