// SPDX-License-Identifier: GPL-2.0

//! One small workload in a loop, between two profiling markers, for
//! `make profile`. Runs against whichever iommufd module is loaded:
//! `iommufd_profile WORKLOAD ITERATIONS`.
//!
//! The marker is `xchg bx, bx`, a no-op on hardware; the `tbprof` QEMU
//! plugin zeroes its instruction counters at the first and writes them
//! out at the second.

use iommufd_rs_selftests::dev::{Iommufd, FIXED, RW};
use iommufd_rs_selftests::uapi;

const PAGE: u64 = 4096;
/// Unbacked user address: nothing is pinned without a domain.
const VA: u64 = 0x7f00_0000_0000;
/// IOVA of the pair workloads: the mock aperture's start.
const IOVA: u64 = uapi::MOCK_APERTURE_START as u64;

/// The names `make profile` accepts, with what each one does.
const WORKLOADS: [(&str, &str); 6] = [
    (
        "native_pair",
        "IOAS_MAP + IOAS_UNMAP of 4 KiB at a fixed IOVA",
    ),
    ("compat_pair", "VFIO MAP_DMA + UNMAP_DMA of 4 KiB (type1v2)"),
    (
        "rejected_early",
        "IOAS_MAP with no flags (EINVAL before any lookup)",
    ),
    (
        "rejected_after_lookup",
        "IOAS_MAP of length 0 (EINVAL after the IOAS lookup)",
    ),
    ("iova_ranges", "IOAS_IOVA_RANGES with room for one range"),
    ("destroy_missing_id", "DESTROY of an ID that does not exist"),
];

fn marker() {
    // SAFETY: exchanging a register with itself changes no state.
    unsafe { core::arch::asm!("xchg bx, bx", options(nomem, nostack, preserves_flags)) };
}

fn run(workload: &str, iterations: u64) -> Result<(), String> {
    let fd = Iommufd::open()?;
    let ioas = fd.ioas_alloc().map_err(|e| format!("alloc: {e}"))?;
    fd.map(ioas, VA, PAGE, RW | FIXED, 2 * PAGE)
        .map_err(|e| format!("setup map: {e}"))?;
    let rw = uapi::VFIO_DMA_MAP_FLAG_READ | uapi::VFIO_DMA_MAP_FLAG_WRITE;
    if workload == "compat_pair" {
        fd.vfio_ioas(uapi::IOMMU_VFIO_IOAS_SET, ioas)
            .map_err(|e| format!("vfio_ioas: {e}"))?;
        fd.vfio_value(uapi::VFIO_SET_IOMMU, u64::from(uapi::VFIO_TYPE1v2_IOMMU))
            .map_err(|e| format!("set_iommu: {e}"))?;
    }
    let mut op: Box<dyn FnMut() -> Result<(), String>> = match workload {
        "native_pair" => Box::new(|| {
            fd.map(ioas, VA, PAGE, RW | FIXED, IOVA)
                .map_err(|e| format!("map: {e}"))?;
            fd.unmap(ioas, IOVA, PAGE)
                .map(|_| ())
                .map_err(|e| format!("unmap: {e}"))
        }),
        "compat_pair" => Box::new(|| {
            match fd.vfio_map(rw, VA, IOVA, PAGE) {
                0 => {}
                e => return Err(format!("map_dma: {e}")),
            }
            match fd.vfio_unmap(0, IOVA, PAGE) {
                (0, n) if n == PAGE => Ok(()),
                other => Err(format!("unmap_dma: {other:?}")),
            }
        }),
        "rejected_early" => Box::new(|| match fd.map(ioas, VA, PAGE, 0, 0) {
            Err(_) => Ok(()),
            Ok(_) => Err("map without flags succeeded".into()),
        }),
        "rejected_after_lookup" => Box::new(|| match fd.map(ioas, VA, 0, RW | FIXED, 0) {
            Err(_) => Ok(()),
            Ok(_) => Err("zero-length map succeeded".into()),
        }),
        "iova_ranges" => Box::new(|| {
            fd.iova_ranges(ioas, 1)
                .map(|_| ())
                .map_err(|e| format!("{e:?}"))
        }),
        "destroy_missing_id" => Box::new(|| match fd.destroy(ioas + 1000) {
            0 => Err("destroy of a missing id succeeded".into()),
            _ => Ok(()),
        }),
        _ => return Err(format!("unknown workload {workload}")),
    };
    // One untimed call so that first-use costs stay out of the window.
    op()?;
    let start = std::time::Instant::now();
    marker();
    for _ in 0..iterations {
        op()?;
    }
    marker();
    let ns = start.elapsed().as_nanos() as f64 / iterations as f64;
    println!("profile {workload} ns_per_call={ns:.0}");
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(workload), Some(Ok(iterations))) =
        (args.get(1), args.get(2).map(|n| n.parse::<u64>()))
    else {
        eprintln!("usage: iommufd_profile WORKLOAD ITERATIONS; workloads:");
        for (name, what) in WORKLOADS {
            eprintln!("  {name}: {what}");
        }
        std::process::exit(2);
    };
    if let Err(e) = run(workload, iterations) {
        eprintln!("iommufd_profile {workload}: {e}");
        std::process::exit(1);
    }
}
