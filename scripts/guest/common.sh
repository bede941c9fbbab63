# Helpers for guest scripts (busybox sh). Sourced by the generated /test.sh.

guest_n=0
# pass_fail NAME CMD...: one TAP result line for CMD's exit status.
pass_fail() {
	local name=$1; shift
	guest_n=$((guest_n + 1))
	if "$@"; then echo "ok $guest_n $name"; else echo "not ok $guest_n $name"; fi
}

# section NAME CMD...: CMD's output between ##BEGIN/##END markers.
section() {
	local name=$1; shift
	echo "##BEGIN $name"
	"$@" 2>&1
	echo "##END $name"
}

# The messages logged since the last call, without timestamps.
new_dmesg() { dmesg -c | sed 's/^\[[ 0-9.]*\] //'; }

load_rust() { insmod /lib/modules/iommufd_rs.ko "$@"; }
unload_rust() { rmmod iommufd_rs; }
load_c() {
	[ -f /lib/modules/iommu_amdv1.ko ] && insmod /lib/modules/iommu_amdv1.ko
	insmod /lib/modules/iommufd.ko
}
unload_c() {
	rmmod iommufd && { [ ! -f /lib/modules/iommu_amdv1.ko ] || rmmod iommu_amdv1; }
}

# upstream PROGRAM [ARGS]: the unmodified upstream selftest, bounded in time.
upstream() {
	local prog=$1
	shift
	timeout -s KILL "${UPSTREAM_TIMEOUT:-900}" "/bin/$prog" "$@"
}
