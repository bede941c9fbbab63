// SPDX-License-Identifier: GPL-2.0

//! `make run` demo: allocate, list and destroy IOAS objects on /dev/iommu.

use iommufd_rs_selftests::dev::Iommufd;

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
