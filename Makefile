# SPDX-License-Identifier: GPL-2.0
#
# Two jobs in one Makefile:
#  - kernel developers: `make KDIR=<tree with CONFIG_RUST> LLVM=1` builds
#    iommufd/iommufd_rs.ko out of tree (Kbuild does the work);
#  - the project harness: `make run`, `make check`, `make conformance`, which
#    provision their own toolchain and test kernel under $(IOMMUFD_RS_CACHE).

ifneq ($(KERNELRELEASE),)
include $(src)/Kbuild
else

KDIR ?= /lib/modules/$(shell uname -r)/build

modules:
	$(MAKE) -C $(KDIR) M=$(CURDIR) modules

clean:
	$(MAKE) -C $(KDIR) M=$(CURDIR) clean

# Harness targets: each script sets up what it needs first.
setup:
	bash scripts/setup-root.sh
	bash scripts/build-kernel.sh >/dev/null

run:
	bash scripts/run.sh

check:
	bash scripts/check.sh

conformance:
	bash scripts/conformance.sh

check-debug:
	bash scripts/check-debug.sh

bench:
	bash scripts/bench.sh

# Instructions per call, per function, C vs Rust: make profile WORKLOAD=native_pair
profile:
	PROFILE_BLOCKS=$(BLOCKS) bash scripts/profile.sh $(WORKLOAD) $(ITERATIONS)

# Differential fuzzing against C iommufd: make fuzz SEED=7 STEPS=100000
fuzz:
	SEED="$(SEED)" STEPS="$(STEPS)" bash scripts/fuzz.sh

# Many seeds in two VMs, at most 15 minutes: make fuzz-campaign [SEEDS=48]
# [STEPS=150000] [FIRST=1], and/or SEED_LIST="90417:300000 ..."
fuzz-campaign:
	SEEDS="$(SEEDS)" STEPS="$(STEPS)" FIRST="$(FIRST)" SEED_LIST="$(SEED_LIST)" \
		bash scripts/fuzz-campaign.sh

.PHONY: modules clean setup run check check-debug conformance bench profile fuzz fuzz-campaign
endif
