#!/bin/bash
# Build the production iommufd_rs.ko (CONFIG_IOMMUFD_RS_TEST=n: no
# IOMMU_TEST_CMD, no mock domain) against the test kernel, with clippy on
# (CLIPPY=0 to skip), from a copy of the sources so that it does not
# clobber the test build. Prints the module's path on the host.
. "$(dirname "$0")/lib.sh"

kdir=$(bash "$REPO/scripts/build-kernel.sh")
clippy=${CLIPPY:-1}
src=$ROOT/build/prod-src
mkdir -p "$src"
# Sources only: Kbuild outputs stay where each build made them.
rm -rf "$src/include" "$src/Kbuild"
cp -r "$REPO/include" "$REPO/Kbuild" "$src/"
mkdir -p "$src/iommufd"
# Sources deleted or moved in the repository must go here too.
find "$src/iommufd" \( -name '*.rs' ! -name 'uapi_generated.rs' -o -name '*.h' -o -name '*.c' \) -delete
( cd "$REPO/iommufd" && find . -name '*.rs' ! -name 'uapi_generated.rs' -o -name '*.h' -o -name '*.c' -o -name Kbuild ) |
	while read -r f; do mkdir -p "$src/iommufd/$(dirname "$f")"; cp -p "$REPO/iommufd/$f" "$src/iommufd/$f"; done
in_root make -C "$kdir" M=/build/prod-src LLVM=1 CLIPPY="$clippy" CONFIG_IOMMUFD_RS_TEST=n modules >&2 ||
	die "production module build failed"
echo "$src/iommufd/iommufd_rs.ko"
