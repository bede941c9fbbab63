// SPDX-License-Identifier: GPL-2.0

//! `make run` demo: allocate, list and destroy IOAS objects on /dev/iommu.

use iommufd_rs_selftests::dev::{Iommufd, RW};

fn main() {
    if let Err(e) = demo() {
        eprintln!("demo failed: {e}");
        std::process::exit(1);
    }
}

fn demo() -> Result<(), String> {
    let fd = Iommufd::open()?;
    println!("opened /dev/iommu");
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = fd
            .ioas_alloc()
            .map_err(|e| format!("IOMMU_IOAS_ALLOC: errno {e}"))?;
        println!("IOMMU_IOAS_ALLOC -> ioas {id}");
        ids.push(id);
    }
    for &id in &ids {
        let (ranges, align) = fd
            .iova_ranges(id, 4)
            .map_err(|(e, _)| format!("IOMMU_IOAS_IOVA_RANGES: errno {e}"))?;
        for r in ranges {
            println!(
                "IOMMU_IOAS_IOVA_RANGES ioas {id}: usable {:#x}..={:#x}, alignment {align}",
                r.start, r.last
            );
        }
    }
    // Map 64 KiB of this process's memory into the first IOAS, share it
    // with the second through IOAS_COPY, then unmap everything.
    let buf = vec![0u8; 128 << 10];
    let va = (buf.as_ptr() as u64 + 0xffff) & !0xffff;
    let iova = fd
        .map(ids[0], va, 64 << 10, RW, 0)
        .map_err(|e| format!("IOMMU_IOAS_MAP: errno {e}"))?;
    println!(
        "IOMMU_IOAS_MAP 64 KiB at user VA {va:#x} -> ioas {} iova {iova:#x}",
        ids[0]
    );
    let copy = fd
        .copy(ids[1], ids[0], iova, 64 << 10, RW, 0)
        .map_err(|e| format!("IOMMU_IOAS_COPY: errno {e}"))?;
    println!(
        "IOMMU_IOAS_COPY ioas {} iova {iova:#x} -> ioas {} iova {copy:#x} (same pages)",
        ids[0], ids[1]
    );
    for &id in &ids[..2] {
        let bytes = fd
            .unmap(id, 0, u64::MAX)
            .map_err(|e| format!("IOMMU_IOAS_UNMAP: errno {e}"))?;
        println!("IOMMU_IOAS_UNMAP all of ioas {id} -> {bytes} bytes");
    }
    for &id in &ids {
        match fd.destroy(id) {
            0 => println!("IOMMU_DESTROY ioas {id} -> ok"),
            e => return Err(format!("IOMMU_DESTROY {id}: errno {e}")),
        }
    }
    println!(
        "IOMMU_DESTROY ioas {} again -> errno {} (ENOENT)",
        ids[0],
        fd.destroy(ids[0])
    );
    println!("demo done");
    Ok(())
}
