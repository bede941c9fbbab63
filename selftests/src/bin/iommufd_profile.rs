// SPDX-License-Identifier: GPL-2.0

//! `make bench`'s workloads in a loop, each between two profiling markers,
//! for `make profile`. Runs against whichever iommufd module is loaded:
//! `iommufd_profile IMPL WORKLOAD|all [ITERATIONS]`.
//!
//! The window marker is `xchg bx, bx`, a no-op on hardware; the `tbprof`
//! QEMU plugin zeroes its instruction counters at the first and writes
//! them out at the second. `xchg cx, cx` and `xchg dx, dx` pause and
//! resume counting around the unmeasured steps between calls. After each
//! window a line `profile impl=IMPL name=NAME iterations=N` (or `failed`)
//! tells `scripts/profile.py` which workload it was.

use iommufd_rs_selftests::bench::{self, Memory, Step, Workload, WORKLOADS};

use bench::{pause_marker, resume_marker, window_marker};

/// Runs an unmeasured step, if there is one, with counting paused when
/// `counted`.
fn unmeasured(step: &mut Option<Box<dyn FnMut() -> Step>>, counted: bool) -> Step {
    let Some(step) = step.as_mut() else {
        return Ok(());
    };
    if counted {
        pause_marker();
    }
    let result = step();
    if counted {
        resume_marker();
    }
    result
}

/// Runs `w` `iterations` times inside one window. `Ok(false)` if the
/// workload has no C peer and C refused it (no window then).
fn run(imp: &str, w: &Workload, iterations: u64, mem: &mut Memory) -> Result<bool, String> {
    let mut p = match w.prepare(mem) {
        Ok(p) => p,
        Err(e) if w.rust_only && e.starts_with("no C peer") => return Ok(false),
        Err(e) => return Err(e),
    };
    let mut one = |counted: bool| -> Step {
        unmeasured(&mut p.before, counted)?;
        (p.call)()?;
        unmeasured(&mut p.after, counted)
    };
    // One uncounted call keeps first-use costs out of the window, where
    // a call is cheap.
    if w.calls >= 100 {
        one(false)?;
    }
    window_marker();
    let result = (0..iterations).try_for_each(|_| one(true));
    window_marker();
    // The window exists either way: its line says whether to count it.
    match &result {
        Ok(()) => println!("profile impl={imp} name={} iterations={iterations}", w.name),
        Err(_) => println!("profile impl={imp} name={} failed", w.name),
    }
    result.map(|()| true)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(imp), Some(which)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: iommufd_profile IMPL WORKLOAD|all [ITERATIONS]; workloads:");
        for w in WORKLOADS {
            eprintln!("  {}: {}", w.name, w.what);
        }
        std::process::exit(2);
    };
    let iterations = args.get(3).and_then(|n| n.parse::<u64>().ok());
    let picked: Vec<&Workload> = if which == "all" {
        WORKLOADS.iter().collect()
    } else {
        match bench::find(which) {
            Some(w) => vec![w],
            None => {
                eprintln!("iommufd_profile: unknown workload {which}");
                std::process::exit(2);
            }
        }
    };
    let mut mem = Memory::default();
    let mut failed = false;
    for w in picked {
        // By default a tenth of the bench's calls: the counts are exact.
        let n = iterations.unwrap_or((w.calls / 10).max(1));
        if let Err(e) = run(imp, w, n, &mut mem) {
            eprintln!("iommufd_profile {}: {e}", w.name);
            failed = true;
        }
    }
    std::process::exit(i32::from(failed));
}
