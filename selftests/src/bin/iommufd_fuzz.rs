// SPDX-License-Identifier: GPL-2.0

//! Differential fuzzer: the same seeded sequence of valid and invalid
//! ioctls against C iommufd and iommufd_rs, loaded side by side (ours under
//! another node name), comparing every result.
//!
//! Usage: `iommufd_fuzz SEED STEPS [C_NODE RUST_NODE]`. On the first
//! divergence it prints the seed, the step and both answers, and exits 1;
//! replaying the same seed with STEPS set to that step reproduces it.
//! Prints one KTAP result line.
//!
//! The environment: `FUZZ_TRACE=N` prints the N steps before a
//! divergence, `FUZZ_FAILURES=1` each operation's failing answers,
//! `FUZZ_SHOW=op,..` every step of those operations as it runs,
//! `FUZZ_SLOW=MS` every step that took longer than MS milliseconds,
//! `FUZZ_STRICT=1` (or `=name,..`) stops steering clear of the known
//! divergences (see `Avoid`), and `FUZZ_PROBE=1` runs, instead, a fixed
//! dirty-tracking sequence and prints both answers of each call.

use iommufd_rs_selftests::dev::{Iommufd, FIXED, READ, RW, WRITE};
use iommufd_rs_selftests::sys::{self, AnonPages};
use iommufd_rs_selftests::uapi;
use std::os::fd::AsRawFd;

/// xorshift64*: small, seedable, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

const PAGE: u64 = 4096;

/// Memory the maps point at: anonymous, THP-aligned, hugetlb and memfd.
/// Nothing is pinned without a domain, but real memory keeps the sequences
/// valid once domains are attached.
struct Backing {
    user: Vec<(u64, u64)>,
    memfd: std::fs::File,
    memfd_len: u64,
}

/// Where the fuzzer's user memory lives: fixed, so that a seed alone
/// decides every address (and so every alignment) a run uses.
const BACKING_BASE: u64 = 0x2000_0000_0000;

impl Backing {
    fn new() -> Result<Self, String> {
        const MIB: u64 = 1 << 20;
        let mut user = Vec::new();
        let anon = sys::mmap_anon_at(BACKING_BASE, MIB, AnonPages::Small).ok_or("mmap anon")?;
        user.push((anon, MIB));
        let thp =
            sys::mmap_anon_at(BACKING_BASE + 4 * MIB, 2 * MIB, AnonPages::Thp).ok_or("mmap thp")?;
        user.push((thp, 2 * MIB));
        // Without reserved hugetlb pages a run differs from one with them:
        // say so, rather than run a different sequence silently.
        let huge = sys::mmap_anon_at(BACKING_BASE + 8 * MIB, 2 * MIB, AnonPages::Hugetlb)
            .ok_or("mmap hugetlb (are 2 MiB pages reserved?)")?;
        user.push((huge, 2 * MIB));
        let memfd_len = MIB;
        let memfd = sys::memfd(memfd_len).map_err(|e| format!("memfd: {e}"))?;
        Ok(Self {
            user,
            memfd,
            memfd_len,
        })
    }
}

/// Both files, and what the fuzzer has seen, to aim at live objects.
struct Fuzz {
    c: Iommufd,
    rust: Iommufd,
    rng: Rng,
    mem: Backing,
    /// IDs handed out (equal on both sides, else we already stopped).
    ids: Vec<u32>,
    /// IOVA ranges mapped: (ioas, iova, length).
    mapped: Vec<(u32, u64, u64)>,
    /// Successful user-memory maps: (IOAS, IOVA, length, user address).
    user_maps: Vec<(u32, u64, u64, u64)>,
    /// Successful file maps: (IOAS, IOVA, length).
    file_maps: Vec<(u32, u64, u64)>,
    /// Mock devices made, and where each is attached.
    devices: Vec<MockDev>,
    /// Paging HWPTs that exist (automatic ones go with their last device).
    hwpts: Vec<Hwpt>,
    /// What the dirty-tracking steps achieved, for the summary.
    dirty_stats: DirtyStats,
    /// Ranges `TEST_OP_DIRTY` marked pages in, lately: (HWPT, IOVA,
    /// length), for the bitmap reads to aim at.
    marked: Vec<(u32, u64, u64)>,
    /// While a mark-and-read step runs: the HWPT and the range its two
    /// halves aim at.
    focus: Option<(Hwpt, u64, u64)>,
    /// Which known iommufd_rs divergences the generator steers clear of.
    avoid: Avoid,
    /// Print each step's kind, and C's answer, before iommufd_rs is asked
    /// (`FUZZ_ECHO=STEP`, from that step on): finds the step a hang is in.
    echo: bool,
    /// Where pointer fields of hostile structs point.
    scratch: Box<[u8; 4096]>,
    /// Open mock accesses: (C's file, ours, IOAS). Their descriptor
    /// numbers differ, so they are compared by position here.
    accesses: Vec<(std::fs::File, std::fs::File, u32)>,
    /// Pinned items: (access position, item ID).
    access_items: Vec<(usize, u32)>,
    /// The last container type `VFIO_SET_IOMMU` accepted (0: none yet).
    compat_type: u64,
    /// The IOAS the VFIO container ioctls work on (IOMMU_VFIO_IOAS SET).
    compat_ioas: Option<u32>,
    /// Nested HWPTs: (ID, the IOTLB value they were made with).
    nested: Vec<(u32, u32)>,
    /// HWPTs made with a fault queue.
    fault_hwpts: Vec<u32>,
    /// Fault queues: (ID, C's file, ours).
    faults: Vec<(u32, std::fs::File, std::fs::File)>,
    /// vIOMMUs.
    viommus: Vec<u32>,
    /// Virtual devices: (ID, virtual ID).
    vdevs: Vec<(u32, u64)>,
    /// vEVENTQs: (ID, C's file, ours).
    veventqs: Vec<(u32, std::fs::File, std::fs::File)>,
    /// HW queues.
    hw_queues: Vec<u32>,
    /// Test dma-bufs: (C's, ours), each side's own exporter.
    dmabufs: Vec<(std::fs::File, std::fs::File)>,
}

/// One step's outcome on one side, printed on divergence.
type Outcome = String;

/// A mock device the fuzzer made.
#[derive(Clone, Copy, Debug)]
struct MockDev {
    stdev: u32,
    /// Its device object, what `IOMMU_HWPT_ALLOC` names.
    idev: u32,
    /// Made with `MOCK_FLAGS_DEVICE_NO_DIRTY`.
    no_dirty: bool,
    /// The HWPT it is attached to.
    hwpt: u32,
}

/// A paging HWPT the fuzzer saw made.
#[derive(Clone, Copy, Debug)]
struct Hwpt {
    id: u32,
    /// The IOAS whose areas its domain maps.
    ioas: u32,
    /// Made by `IOMMU_HWPT_ALLOC` (else automatic: it goes with its last
    /// device).
    manual: bool,
    /// Made with `IOMMU_HWPT_ALLOC_DIRTY_TRACKING`.
    dirty: bool,
    /// The `MOCK_IOMMUPT_HUGE` format (1 MiB and 4 KiB IO pages).
    huge: bool,
    /// Dirty tracking was last turned on.
    tracking: bool,
    /// Made with `IOMMU_HWPT_ALLOC_NEST_PARENT`.
    parent: bool,
}

/// Counts for the summary: whether dirty tracking did real work.
#[derive(Default)]
struct DirtyStats {
    /// Pages `TEST_OP_DIRTY` marked (C's `out_nr_dirty`, summed).
    marked: u64,
    /// `GET_DIRTY_BITMAP` calls that succeeded and set bits.
    reads_with_bits: u64,
    /// Bytes of bitmap those calls changed.
    bytes_changed: u64,
}

/// Known cases where iommufd_rs answers differently from C. While one
/// stands, the generator steers clear of it (each field says how), so that
/// a campaign finds the others; `FUZZ_STRICT=1` turns every one off,
/// `FUZZ_STRICT=name,..` the named ones (to check a fix).
#[derive(Clone, Copy, Debug)]
struct Avoid {
    /// `compat_migration` (by design: iommufd_rs does type1's container
    /// dirty tracking, beyond C iommufd): `VFIO_IOMMU_GET_INFO` puts a
    /// 32-byte MIGRATION capability first in the chain, C has none; and
    /// `VFIO_IOMMU_UNMAP_DMA` with `GET_DIRTY_BITMAP` follows type1, where
    /// C answers `EINVAL`. Our GET_INFO is asked with 32 more bytes of
    /// `argsz` (when C's covers the header) and compared with the
    /// capability taken out (`get_info_without_migration`); UNMAP_DMA goes
    /// without that flag; raw GET_INFO is not sent.
    compat_migration: bool,
    /// `c_spins` (C's bug, not ours): C's GET_DIRTY_BITMAP never returns
    /// when the mock's walk records a zero-length dirty run at the range's
    /// first IOVA (other than 0), which it does when that IOVA lies in the
    /// last item of a dirty PTE of several items (generic PT's record is
    /// one item short): iova_bitmap_set's last bit wraps, it sets the bits
    /// of the pinned pages, then comes back to the same state forever
    /// (with one byte per bit, page size 1, already at the first bit). The
    /// guest hangs; iommufd_rs stops there (`IovaBitmap::set`). A range
    /// starting in the upper half of a 4 KiB, 2 MiB or 1 GiB block (where
    /// last items of runs of 2 KiB, 1 MiB, 512 MiB items lie) starts at
    /// the block instead, its end kept; a page size of 1 is sent as 512;
    /// raw GET_DIRTY_BITMAP names no HWPT.
    c_spins: bool,
}

impl Avoid {
    fn from_env() -> Self {
        let strict = std::env::var("FUZZ_STRICT").unwrap_or_default();
        let off = |name: &str| {
            strict == "1" || strict == "all" || strict.split(',').any(|s| s.trim() == name)
        };
        Self {
            compat_migration: !off("compat_migration"),
            c_spins: !off("c_spins"),
        }
    }
}

extern "C" {
    fn mprotect(addr: *mut u8, len: usize, prot: i32) -> i32;
}

/// Where dirty bitmaps and HWPT driver data live: fixed (a seed alone
/// decides every address), 16 writable pages, a read-only page, a
/// writable page, a hole, a last writable page, and then nothing mapped
/// for a long way, so that bits far past a bitmap fault on both sides.
const REGION_BASE: u64 = 0x3000_0000_0000;
const REGION_PAGES: u64 = 20;
const RO_PAGE: u64 = 16;
const HOLE_PAGE: u64 = 18;
/// Driver data for `HWPT_ALLOC` ends right before the hole, so that a
/// longer `data_len` reads into it.
const HWPT_DATA: u64 = REGION_BASE + HOLE_PAGE * PAGE - 8;

fn region_map() -> Result<(), String> {
    let base = sys::mmap_anon_at(REGION_BASE, REGION_PAGES * PAGE, AnonPages::Small)
        .ok_or("mmap bitmap region")?;
    if base != REGION_BASE {
        return Err("bitmap region moved".into());
    }
    sys::munmap_anon(REGION_BASE + HOLE_PAGE * PAGE, PAGE);
    region_protect(false);
    Ok(())
}

/// Makes the read-only page writable (to fill it) or read-only again.
fn region_protect(writable: bool) {
    const PROT_READ: i32 = 1;
    const PROT_RW: i32 = 3;
    let prot = if writable { PROT_RW } else { PROT_READ };
    // SAFETY: A page of our own fixed mapping, which nothing else uses.
    unsafe {
        mprotect(
            (REGION_BASE + RO_PAGE * PAGE) as *mut u8,
            PAGE as usize,
            prot,
        )
    };
}

/// The region's bytes for a fill of 0x5a: every offset its own.
fn region_pattern() -> &'static [u8] {
    static PATTERN: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| {
        (0..REGION_PAGES * PAGE)
            .map(|off| (off * 7 % 251) as u8)
            .collect()
    })
}

/// Fills every mapped page of the region with `fill`, or with
/// `region_pattern` for 0x5a. Whole pages at a time: under TCG, byte by
/// byte would cost more than the ioctls.
fn region_fill(fill: u8) {
    region_protect(true);
    for page in (0..REGION_PAGES).filter(|&p| p != HOLE_PAGE) {
        let at = (REGION_BASE + page * PAGE) as *mut u8;
        let from = &region_pattern()[(page * PAGE) as usize..((page + 1) * PAGE) as usize];
        // SAFETY: A writable page of our own fixed mapping, which nothing
        // else refers to; `from` is another allocation of the same size.
        unsafe {
            match fill {
                0x5a => std::ptr::copy_nonoverlapping(from.as_ptr(), at, PAGE as usize),
                _ => std::ptr::write_bytes(at, fill, PAGE as usize),
            }
        }
    }
    region_protect(false);
}

/// Writes `bytes` at `offset` in the region, skipping the hole.
fn region_write(offset: u64, bytes: &[u8]) {
    region_protect(true);
    for (i, &b) in bytes.iter().enumerate() {
        let off = offset + i as u64;
        if off < REGION_PAGES * PAGE && off / PAGE != HOLE_PAGE {
            // SAFETY: A writable byte of our own fixed mapping.
            unsafe { ((REGION_BASE + off) as *mut u8).write_volatile(b) };
        }
    }
    region_protect(false);
}

/// The region's bytes (the hole reads as zeroes).
fn region_read() -> Vec<u8> {
    let mut out = vec![0u8; (REGION_PAGES * PAGE) as usize];
    for page in (0..REGION_PAGES).filter(|&p| p != HOLE_PAGE) {
        let to = &mut out[(page * PAGE) as usize..((page + 1) * PAGE) as usize];
        // SAFETY: A readable page of our own fixed mapping; `to` is
        // another allocation of the same size.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (REGION_BASE + page * PAGE) as *const u8,
                to.as_mut_ptr(),
                PAGE as usize,
            )
        };
    }
    out
}

/// How `after` differs from `before`: the bytes changed (offset and new
/// value, the first few) and a hash of all of it.
fn region_diff(before: &[u8], after: &[u8]) -> (u64, String) {
    let mut changed: Vec<(usize, u8)> = Vec::new();
    let page = PAGE as usize;
    for (n, (a, b)) in before.chunks(page).zip(after.chunks(page)).enumerate() {
        if a != b {
            changed.extend(
                a.iter()
                    .zip(b)
                    .enumerate()
                    .filter(|(_, (x, y))| x != y)
                    .map(|(i, (_, &y))| (n * page + i, y)),
            );
        }
    }
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for &(i, b) in &changed {
        for x in (i as u32).to_ne_bytes().into_iter().chain([b]) {
            hash ^= u64::from(x);
            hash = hash.wrapping_mul(0x100_0000_01b3);
        }
    }
    let first: Vec<String> = changed
        .iter()
        .take(40)
        .map(|(i, b)| format!("{i:#x}={b:02x}"))
        .collect();
    (
        changed.len() as u64,
        format!(
            "changed={} [{}] h={hash:016x}",
            changed.len(),
            first.join(" ")
        ),
    )
}

/// `VFIO_IOMMU_GET_INFO` on iommufd_rs as C iommufd would answer it, its
/// MIGRATION capability aside (see `Avoid::compat_migration`): asked with
/// room for that capability too (32 more bytes of `argsz`, when `argsz`
/// covers the 24-byte header), which is then taken out of the answer,
/// the offsets after it and the size reported moved back by 32.
fn get_info_without_migration(f: &Iommufd, argsz: u32, buf_len: usize) -> (i32, Vec<u8>) {
    const MIGRATION: usize = 32;
    const HEADER: usize = 24;
    let shift = if argsz as usize >= HEADER {
        MIGRATION
    } else {
        0
    };
    let asked = argsz + shift as u32;
    let mut buf = vec![0xaau8; buf_len.max(8) + 8 + shift];
    buf[..4].copy_from_slice(&asked.to_ne_bytes());
    let rc = sys::ioctl_ptr(&f.file, uapi::VFIO_IOMMU_GET_INFO, buf.as_mut_ptr());
    let word = |b: &[u8], at: usize| u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    if shift != 0 {
        buf.drain(HEADER..HEADER + MIGRATION);
        // DMA_AVAIL's `next`, if it was written.
        if rc == 0 && argsz as usize >= 40 {
            let next = word(&buf, HEADER + 4) - MIGRATION as u32;
            buf[HEADER + 4..HEADER + 8].copy_from_slice(&next.to_ne_bytes());
        }
    }
    let reported = match rc {
        0 => word(&buf, 0).wrapping_sub(MIGRATION as u32),
        _ => argsz,
    };
    buf[..4].copy_from_slice(&reported.to_ne_bytes());
    buf.truncate(buf_len.max(8));
    (rc, buf)
}

/// Any ioctl on a struct given as bytes; the errno (0 on success).
fn ioctl_bytes(f: &Iommufd, num: u32, bytes: &mut [u8]) -> i32 {
    sys::ioctl_ptr(&f.file, num, bytes.as_mut_ptr())
}

/// The bytes of a plain uAPI struct.
fn struct_bytes<T: Copy>(value: &T) -> Vec<u8> {
    // SAFETY: uAPI structs are plain integers, every byte initialised
    // (built from `Default` and field stores).
    unsafe { std::slice::from_raw_parts(value as *const T as *const u8, std::mem::size_of::<T>()) }
        .to_vec()
}

/// `IOMMU_TEST_CMD` op `op` on `id`, with the union filled by `fill`.
fn test_cmd(
    f: &Iommufd,
    op: u32,
    id: u32,
    fill: impl FnOnce(&mut uapi::iommu_test_cmd),
) -> (i32, uapi::iommu_test_cmd) {
    let mut cmd = uapi::iommu_test_cmd {
        size: std::mem::size_of::<uapi::iommu_test_cmd>() as u32,
        op,
        id,
        ..Default::default()
    };
    fill(&mut cmd);
    let rc = sys::ioctl_struct(&f.file, uapi::IOMMU_TEST_CMD, &mut cmd);
    (rc, cmd)
}

impl Fuzz {
    fn ioas(&mut self) -> u32 {
        if self.ids.is_empty() || self.rng.chance(5) {
            return self.rng.pick(&[0, 1, 2, 3, 100, u32::MAX]);
        }
        self.rng.pick(&self.ids)
    }

    fn length(&mut self) -> u64 {
        match self.rng.below(10) {
            0 => self
                .rng
                .pick(&[0, 1, 7, u64::MAX, u64::MAX - PAGE + 1, 1 << 63]),
            1 => self.rng.below(3 * PAGE) + 1,
            2..=4 => PAGE,
            5 => 2 << 20,
            _ => (self.rng.below(16) + 1) * PAGE,
        }
    }

    fn iova(&mut self) -> u64 {
        if !self.mapped.is_empty() && self.rng.chance(40) {
            let (_, iova, len) = self.rng.pick(&self.mapped);
            return match self.rng.below(4) {
                0 => iova,
                1 => iova + len,
                2 => iova.saturating_sub(PAGE),
                _ => iova + self.rng.below(len.max(1)),
            };
        }
        match self.rng.below(8) {
            0 => self.rng.pick(&[
                0,
                1,
                PAGE - 1,
                u64::MAX,
                u64::MAX - PAGE,
                u64::MAX - PAGE + 1,
                1 << 63,
            ]),
            1 => self.rng.below(1 << 40),
            // Inside the mock domains' aperture, so that maps reach them
            // (most IOAS objects have a domain or several).
            2..=4 => uapi::MOCK_APERTURE_START as u64 + self.rng.below(1024) * PAGE,
            _ => self.rng.below(1024) * PAGE,
        }
    }

    fn flags(&mut self) -> u32 {
        let mut f = self.rng.pick(&[
            RW,
            RW,
            READ,
            WRITE,
            RW | FIXED,
            READ | FIXED,
            RW | FIXED,
            0,
            FIXED,
        ]);
        if self.rng.chance(3) {
            f |= 1 << self.rng.below(32);
        }
        f
    }

    fn user_va(&mut self) -> u64 {
        let (base, len) = self.rng.pick(&self.mem.user);
        match self.rng.below(10) {
            0 => self.rng.pick(&[0, 1, u64::MAX - PAGE, base + 3]),
            1 => base + self.rng.below(len),
            _ => base + self.rng.below(len / PAGE) * PAGE,
        }
    }

    /// Runs `op` on both sides and returns both outcomes.
    fn both(&mut self, op: impl Fn(&Iommufd) -> Outcome) -> (Outcome, Outcome) {
        let c = op(&self.c);
        if self.echo {
            println!("# C answered {c}");
        }
        (c, op(&self.rust))
    }

    /// Hostile input: a random (mostly garbage) struct of a random size for an
    /// implemented ioctl, or a bad pointer, on both sides; the errno and
    /// every byte written back must match.
    fn raw_step(&mut self) -> (String, Outcome, Outcome) {
        // (number, struct size, offset of a user pointer field, if any)
        let table: [(u32, usize, Option<usize>); 23] = [
            (uapi::IOMMU_DESTROY, 8, None),
            (uapi::IOMMU_IOAS_ALLOC, 12, None),
            (uapi::IOMMU_IOAS_ALLOW_IOVAS, 24, Some(16)),
            (uapi::IOMMU_IOAS_COPY, 40, None),
            (uapi::IOMMU_IOAS_IOVA_RANGES, 32, Some(16)),
            (uapi::IOMMU_IOAS_MAP, 40, None),
            (uapi::IOMMU_IOAS_UNMAP, 24, None),
            (uapi::IOMMU_OPTION, 24, None),
            (uapi::IOMMU_VFIO_IOAS, 12, None),
            (uapi::IOMMU_IOAS_CHANGE_PROCESS, 8, None),
            (uapi::IOMMU_TEST_CMD, 72, None),
            (uapi::VFIO_IOMMU_GET_INFO, 24, None),
            (uapi::VFIO_IOMMU_MAP_DMA, 32, None),
            (uapi::VFIO_IOMMU_UNMAP_DMA, 24, None),
            (uapi::IOMMU_HWPT_ALLOC, 48, Some(32)),
            (uapi::IOMMU_HWPT_SET_DIRTY_TRACKING, 16, None),
            (uapi::IOMMU_HWPT_GET_DIRTY_BITMAP, 48, Some(40)),
            (uapi::IOMMU_HWPT_INVALIDATE, 32, Some(8)),
            (uapi::IOMMU_FAULT_QUEUE_ALLOC, 16, None),
            (uapi::IOMMU_VIOMMU_ALLOC, 40, Some(32)),
            (uapi::IOMMU_VDEVICE_ALLOC, 24, None),
            (uapi::IOMMU_VEVENTQ_ALLOC, 32, None),
            (uapi::IOMMU_HW_QUEUE_ALLOC, 40, None),
        ];
        let (mut num, mut size, mut ptr_field) = self.rng.pick(&table);
        if self.avoid.compat_migration && num == uapi::VFIO_IOMMU_GET_INFO {
            // Its answer differs by design (see `Avoid::compat_migration`).
            (num, size, ptr_field) = table[0];
        }
        let mut buf = [0u8; 256];
        for b in buf.iter_mut().take(size + 16) {
            *b = match self.rng.below(4) {
                0 => self.rng.next() as u8,
                1 => self.rng.pick(&[1u8, 2, 3, 4, 6, 0xff]),
                _ => 0,
            };
        }
        let declared = self
            .rng
            .pick(&[0usize, 4, size - 1, size, size, size, size + 8, 255]);
        buf[..4].copy_from_slice(&(declared as u32).to_ne_bytes());
        if num == uapi::IOMMU_TEST_CMD {
            // Only the test ops both modules implement.
            let op = self.rng.pick(&[
                uapi::IOMMU_TEST_OP_ADD_RESERVED,
                uapi::IOMMU_TEST_OP_MD_CHECK_REFS,
                uapi::IOMMU_TEST_OP_DIRTY,
            ]);
            buf[4..8].copy_from_slice(&op.to_ne_bytes());
        }
        if num == uapi::IOMMU_HWPT_ALLOC {
            // No device: a HWPT made here would be one the fuzzer does not
            // know of.
            buf[8..12].fill(0);
        }
        // Nothing made here: the queues' flags are never 0 (a file made
        // here has a descriptor number of its own on each side), and no
        // device or vIOMMU is named.
        match num {
            uapi::IOMMU_FAULT_QUEUE_ALLOC => buf[4] |= 1,
            uapi::IOMMU_VEVENTQ_ALLOC => buf[4] |= 1,
            uapi::IOMMU_VIOMMU_ALLOC => buf[12..16].fill(0),
            uapi::IOMMU_VDEVICE_ALLOC => buf[4..8].fill(0),
            uapi::IOMMU_HW_QUEUE_ALLOC => buf[8..12].fill(0),
            _ => {}
        }
        if self.avoid.compat_migration && num == uapi::VFIO_IOMMU_UNMAP_DMA {
            buf[4] &= !(uapi::VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP as u8);
        }
        if self.avoid.c_spins && num == uapi::IOMMU_HWPT_GET_DIRTY_BITMAP {
            // No HWPT: an odd garbage page size could be `Avoid::c_spins`.
            buf[4..8].fill(0);
        }
        let scratch = self.scratch.as_mut_ptr() as u64;
        if let Some(off) = ptr_field {
            let p = self
                .rng
                .pick(&[scratch, scratch, 0, 8, 0xffff_8000_0000_0000, scratch + 3]);
            buf[off..off + 8].copy_from_slice(&p.to_ne_bytes());
        }
        let bad_arg = self.rng.pick(&[
            None,
            None,
            None,
            None,
            Some(0usize),
            Some(8),
            Some(0xffff_8000_0000_0000),
        ]);
        let run = |f: &Iommufd, scratch: &mut [u8; 4096]| -> Outcome {
            let mut b = buf;
            scratch.fill(0x5a);
            let arg = bad_arg.map_or(b.as_mut_ptr(), |a| a as *mut u8);
            let rc = sys::ioctl_ptr(&f.file, num, arg);
            format!(
                "{rc} {:02x?} {:x}",
                &b[..size + 16],
                scratch.iter().map(|&x| u64::from(x)).sum::<u64>()
            )
        };
        let mut scratch_buf = std::mem::replace(&mut self.scratch, Box::new([0; 4096]));
        let c = run(&self.c, &mut scratch_buf);
        let r = run(&self.rust, &mut scratch_buf);
        self.scratch = scratch_buf;
        if num == uapi::IOMMU_HWPT_SET_DIRTY_TRACKING && bad_arg.is_none() && c.starts_with("0 ") {
            let word =
                |at: usize| u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
            let (flags, id) = (word(4), word(8));
            if let Some(h) = self.hwpts.iter_mut().find(|h| h.id == id) {
                h.tracking = flags & uapi::IOMMU_HWPT_DIRTY_TRACKING_ENABLE != 0;
            }
        }
        (
            format!(
                "raw ioctl={num:#x} declared_size={declared} arg={bad_arg:x?} bytes={:02x?}",
                &buf[..size + 16]
            ),
            c,
            r,
        )
    }

    /// One random VFIO container step.
    fn compat_step(&mut self) -> (String, Outcome, Outcome) {
        match self.rng.below(10) {
            0 => {
                let op = self.rng.pick(&[0u32, 1, 1, 1, 2, 3]);
                let ioas = self.ioas();
                let (c, r) = self.both(|f| format!("{:?}", f.vfio_ioas(op, ioas)));
                if c.starts_with("Ok(") {
                    match op {
                        uapi::IOMMU_VFIO_IOAS_SET => self.compat_ioas = Some(ioas),
                        uapi::IOMMU_VFIO_IOAS_CLEAR => self.compat_ioas = None,
                        _ => {}
                    }
                }
                (format!("vfio_ioas op={op} ioas={ioas}"), c, r)
            }
            1 => {
                let (req, name) = self.rng.pick(&[
                    (uapi::VFIO_GET_API_VERSION, "api_version"),
                    (uapi::VFIO_CHECK_EXTENSION, "check_extension"),
                    (uapi::VFIO_SET_IOMMU, "set_iommu"),
                    (uapi::VFIO_SET_IOMMU, "set_iommu"),
                    (uapi::VFIO_IOMMU_ENABLE, "enable"),
                ]);
                let value = self.rng.pick(&[0u64, 1, 3, 3, 4, 8, 9, 11, 1 << 32]);
                let (c, r) = self.both(|f| format!("{:?}", f.vfio_value(req, value)));
                if name == "set_iommu" && c == "Ok(0)" {
                    self.compat_type = value;
                }
                (format!("{name} {value}"), c, r)
            }
            2 => {
                let argsz = self
                    .rng
                    .pick(&[0u32, 8, 15, 16, 20, 24, 30, 36, 40, 48, 56, 71, 72, 100]);
                let len = argsz as usize + self.rng.below(32) as usize;
                let c = format!("{:?}", self.c.vfio_get_info(argsz, len));
                let r = match self.avoid.compat_migration {
                    false => format!("{:?}", self.rust.vfio_get_info(argsz, len)),
                    true => format!("{:?}", get_info_without_migration(&self.rust, argsz, len)),
                };
                (format!("get_info argsz={argsz}"), c, r)
            }
            3..=6 => {
                let mut flags = self.rng.pick(&[3u32, 3, 1, 2, 0, 4, 1 << 31]);
                // C 7.2 maps a MAP_DMA with neither READ nor WRITE into the
                // domains, where the mock's page table WARNs (generic_pt
                // map_range); try that only while no domain exists (no
                // device, no HWPT), and unmap it at once, before a domain
                // could be filled from it.
                if flags == 0 && (!self.devices.is_empty() || !self.hwpts.is_empty()) {
                    flags = 3;
                }
                let (va, iova, size) = (self.user_va(), self.iova(), self.length());
                let (mut c, mut r) =
                    self.both(|f| format!("{}", f.vfio_map(flags, va, iova, size)));
                if c == "0" && flags & 3 == 0 {
                    let (uc, ur) = self.both(|f| format!("{:?}", f.vfio_unmap(0, iova, size)));
                    c.push_str(&format!(" then {uc}"));
                    r.push_str(&format!(" then {ur}"));
                } else if c == "0" {
                    if let Some(id) = self.compat_ioas {
                        self.mapped.push((id, iova, size));
                        self.user_maps.push((id, iova, size, va));
                    }
                }
                (
                    format!("map_dma flags={flags:#x} va={va:#x} iova={iova:#x} size={size:#x}"),
                    c,
                    r,
                )
            }
            _ => {
                let mut flags = self.rng.pick(&[0u32, 0, 0, 2, 1, 4]);
                if self.avoid.compat_migration {
                    flags &= !uapi::VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
                }
                let (iova, size) = match self.rng.below(6) {
                    0 => (0, 0),
                    1..=3 if !self.mapped.is_empty() => {
                        let (_, iova, len) = self.rng.pick(&self.mapped);
                        (
                            iova + self.rng.pick(&[0, 0, PAGE]),
                            self.rng.pick(&[len, PAGE, len / 2]),
                        )
                    }
                    _ => (self.iova(), self.length()),
                };
                let (c, r) = self.both(|f| format!("{:?}", f.vfio_unmap(flags, iova, size)));
                if let (true, Some(ioas)) = (c.starts_with("(0,"), self.compat_ioas) {
                    match flags & uapi::VFIO_DMA_UNMAP_FLAG_ALL {
                        0 => self.forget_maps(ioas, iova, size),
                        _ => self.forget_maps(ioas, 0, u64::MAX),
                    }
                }
                (
                    format!("unmap_dma flags={flags:#x} iova={iova:#x} size={size:#x}"),
                    c,
                    r,
                )
            }
        }
    }

    /// Forgets the maps of `ioas` inside `[iova, iova + len)`, after they
    /// were unmapped (areas go whole), so that later steps aim at live ones.
    fn forget_maps(&mut self, ioas: u32, iova: u64, len: u64) {
        let last = iova.saturating_add(len.max(1) - 1);
        let gone = |m_ioas: u32, m_iova: u64, m_len: u64| {
            m_ioas == ioas && m_iova >= iova && m_iova.saturating_add(m_len.max(1) - 1) <= last
        };
        self.mapped.retain(|m| !gone(m.0, m.1, m.2));
        self.user_maps.retain(|m| !gone(m.0, m.1, m.2));
        self.file_maps.retain(|m| !gone(m.0, m.1, m.2));
    }

    /// A range for an access on `ioas` to use: mostly inside memory mapped
    /// there (user memory with its address, or a file's with none), at
    /// most `max` bytes; sometimes anywhere.
    fn access_range(&mut self, ioas: u32, max: u64) -> (u64, u64, u64) {
        let users: Vec<_> = self
            .user_maps
            .iter()
            .filter(|m| m.0 == ioas)
            .copied()
            .collect();
        let files: Vec<_> = self
            .file_maps
            .iter()
            .filter(|m| m.0 == ioas)
            .copied()
            .collect();
        let roll = self.rng.below(10);
        let (iova, len, va) = match roll {
            0..=1 if !files.is_empty() => {
                let (_, iova, len) = self.rng.pick(&files);
                (iova, len, 0)
            }
            2..=8 if !users.is_empty() => {
                let (_, iova, len, va) = self.rng.pick(&users);
                (iova, len, va)
            }
            _ => return (self.iova(), self.length(), self.user_va()),
        };
        let skip = self.rng.below(len / PAGE) * PAGE;
        let n = (self.rng.below(max / PAGE) + 1) * PAGE;
        (
            iova + skip,
            n.min(len - skip),
            if va == 0 { 0 } else { va + skip },
        )
    }

    /// An in-kernel access: created on an IOAS, pinning a range, unpinning
    /// it, or closed.
    fn access_step(&mut self) -> (String, Outcome, Outcome) {
        let roll = self.rng.below(15);
        if self.accesses.is_empty() || (roll < 2 && self.accesses.len() < 4) {
            // Mostly on an IOAS with memory mapped, so that pins can work.
            let ioas = match self.user_maps.is_empty() || self.rng.chance(30) {
                true => self.ioas(),
                false => self.rng.pick(&self.user_maps).0,
            };
            let needs_pin = uapi::MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES;
            let flags = self
                .rng
                .pick(&[needs_pin, needs_pin, needs_pin, needs_pin, 0, 0x80]);
            let (c, r) = (
                self.c.create_access(ioas, flags),
                self.rust.create_access(ioas, flags),
            );
            // Descriptor numbers are not compared.
            let show = |x: &Result<std::fs::File, i32>| match x {
                Ok(_) => "Ok(fd)".to_string(),
                Err(e) => format!("Err({e})"),
            };
            let (cs, rs) = (show(&c), show(&r));
            if let (Ok(c), Ok(r)) = (c, r) {
                self.accesses.push((c, r, ioas));
            }
            return (
                format!("create_access ioas={ioas} flags={flags:#x}"),
                cs,
                rs,
            );
        }
        let at = self.rng.below(self.accesses.len() as u64) as usize;
        match roll {
            2 => {
                // Closing unpins everything the access held.
                self.accesses.remove(at);
                self.access_items.retain(|&(a, _)| a != at);
                for item in self.access_items.iter_mut() {
                    if item.0 > at {
                        item.0 -= 1;
                    }
                }
                (
                    format!("close_access {at}"),
                    "closed".into(),
                    "closed".into(),
                )
            }
            3..=4 => {
                // Fresh memory mapped at an allocated IOVA, then pinned.
                let ioas = self.accesses[at].2;
                let (base, size) = self.rng.pick(&self.mem.user);
                let len = (self.rng.below(16) + 1) * PAGE;
                let va = base + self.rng.below((size - len) / PAGE + 1) * PAGE;
                let (c, r) = self.both(|f| format!("{:?}", f.map(ioas, va, len, RW, 0)));
                let Some(iova) = c
                    .strip_prefix("Ok(")
                    .and_then(|s| s.strip_suffix(')'))
                    .and_then(|s| s.parse::<u64>().ok())
                    .filter(|_| c == r)
                else {
                    return (
                        format!("map_for_access ioas={ioas} va={va:#x} len={len:#x}"),
                        c,
                        r,
                    );
                };
                self.mapped.push((ioas, iova, len));
                self.user_maps.push((ioas, iova, len, va));
                let (acc_c, acc_r, _) = &self.accesses[at];
                let uptr = va as *const u8;
                let c = format!("{:?}", self.c.access_pages(acc_c, iova, len, uptr));
                let r = format!("{:?}", self.rust.access_pages(acc_r, iova, len, uptr));
                if let Some(id) = c.strip_prefix("Ok(").and_then(|s| s.strip_suffix(')')) {
                    if let Ok(id) = id.parse() {
                        self.access_items.push((at, id));
                    }
                }
                (
                    format!("map_and_pin {at} iova={iova:#x} len={len:#x} va={va:#x}"),
                    c,
                    r,
                )
            }
            5..=7 => {
                let ioas = self.accesses[at].2;
                let (iova, len, va) = self.access_range(ioas, 16 * PAGE);
                let w = uapi::MOCK_FLAGS_ACCESS_WRITE;
                let syz = uapi::MOCK_FLAGS_ACCESS_SYZ;
                let flags = self.rng.pick(&[0, 0, 0, 0, w, w, syz, syz | w, 1 << 3]);
                // The syzkaller form names an area by its position.
                let iova = match flags & syz {
                    0 => iova,
                    _ => self.rng.below(4) | (self.rng.below(3) * PAGE) << 32,
                };
                let uptr = va as *const u8;
                let (acc_c, acc_r, _) = &self.accesses[at];
                let c = format!(
                    "{:?}",
                    self.c.access_pages_flags(acc_c, iova, len, uptr, flags)
                );
                let r = format!(
                    "{:?}",
                    self.rust.access_pages_flags(acc_r, iova, len, uptr, flags)
                );
                if let Some(id) = c.strip_prefix("Ok(").and_then(|s| s.strip_suffix(')')) {
                    if let Ok(id) = id.parse() {
                        self.access_items.push((at, id));
                    }
                }
                (
                    format!(
                        "access_pages {at} iova={iova:#x} len={len:#x} va={va:#x} flags={flags:#x}"
                    ),
                    c,
                    r,
                )
            }
            8..=10 => {
                // Reads compare the bytes read; writes land in the same
                // user memory from both sides, the same bytes.
                let ioas = self.accesses[at].2;
                let (iova, len, _) = self.access_range(ioas, 2 * PAGE);
                // The buffer is the length: kept small.
                let len = match self.rng.below(10) {
                    0 => self.rng.pick(&[0, 1, 7, PAGE - 1, PAGE + 1]),
                    _ => len.min(4 * PAGE),
                } as usize;
                let (w, slow) = (uapi::MOCK_ACCESS_RW_WRITE, uapi::MOCK_ACCESS_RW_SLOW_PATH);
                let syz = uapi::MOCK_FLAGS_ACCESS_SYZ;
                let flags = self
                    .rng
                    .pick(&[0, 0, w, w, slow, slow | w, syz, syz | w, 1 << 4]);
                let iova = match flags & syz {
                    0 => iova,
                    _ => self.rng.below(4) | self.rng.below(PAGE) << 32,
                };
                let seed = self.rng.next() as u8;
                let data: Vec<u8> = (0..len).map(|i| seed.wrapping_add(i as u8)).collect();
                let (acc_c, acc_r, _) = &self.accesses[at];
                let run = |f: &Iommufd, acc: &std::fs::File| {
                    let mut buf = data.clone();
                    let rc = f.access_rw(acc, iova, &mut buf, flags);
                    let mut sum = 0u64;
                    fold(&mut sum, &String::from_utf8_lossy(&buf));
                    format!("{rc} {sum:x}")
                };
                let (c, r) = (run(&self.c, acc_c), run(&self.rust, acc_r));
                (
                    format!("access_rw {at} iova={iova:#x} len={len:#x} flags={flags:#x}"),
                    c,
                    r,
                )
            }
            11 => {
                // Moving the access drops its pins on the old IOAS.
                let ioas = self.ioas();
                let (acc_c, acc_r, old) = &self.accesses[at];
                let old = *old;
                let c = format!("{}", self.c.access_replace_ioas(acc_c, ioas));
                let r = format!("{}", self.rust.access_replace_ioas(acc_r, ioas));
                if c == "0" && ioas != old {
                    self.accesses[at].2 = ioas;
                    self.access_items.retain(|&(a, _)| a != at);
                }
                (format!("access_replace_ioas {at} ioas={ioas}"), c, r)
            }
            _ => {
                let (at, item) = match self.access_items.is_empty() || self.rng.chance(10) {
                    true => (at, self.rng.below(8) as u32),
                    false => self.rng.pick(&self.access_items),
                };
                let (acc_c, acc_r, _) = &self.accesses[at];
                let c = format!("{}", self.c.destroy_access_pages(acc_c, item));
                let r = format!("{}", self.rust.destroy_access_pages(acc_r, item));
                if c == "0" {
                    self.access_items.retain(|&x| x != (at, item));
                }
                (format!("destroy_access_pages {at} item={item}"), c, r)
            }
        }
    }

    /// One random step: its description and both outcomes.
    fn step(&mut self) -> (String, Outcome, Outcome) {
        // Keep a handful of IOAS objects so that operations meet each other.
        // Keep a handful of mock devices and manual HWPTs too: every
        // domain on an IOAS is filled on each map (devices left on manual
        // HWPTs keep them alive).
        let manual = self.hwpts.iter().filter(|h| h.manual).count();
        let roll = match self.rng.below(206) {
            r @ 0..=7 if self.ids.len() >= 6 => r + 8,
            125..=131 | 154..=155 if self.devices.len() >= 12 => 132,
            150..=153 if manual >= 6 => 159,
            r => r,
        };
        if self.echo {
            println!("# roll {roll}");
        }
        match roll {
            0..=7 => {
                let (c, r) = self.both(|f| format!("{:?}", f.ioas_alloc()));
                if let Some(id) = c.strip_prefix("Ok(").and_then(|s| s.strip_suffix(')')) {
                    if let Ok(id) = id.parse() {
                        self.born(id);
                        self.ids.push(id);
                    }
                }
                ("ioas_alloc".into(), c, r)
            }
            8..=10 => {
                let id = self.ioas();
                let (c, r) = self.both(|f| format!("{}", f.destroy(id)));
                if c == "0" {
                    self.forget_object(id);
                }
                (format!("destroy {id}"), c, r)
            }
            11..=40 => {
                let (ioas, va, len, flags, iova) = (
                    self.ioas(),
                    self.user_va(),
                    self.length(),
                    self.flags(),
                    self.iova(),
                );
                let (c, r) = self.both(|f| format!("{:?}", f.map(ioas, va, len, flags, iova)));
                if let Some(got) = c.strip_prefix("Ok(").and_then(|s| s.strip_suffix(')')) {
                    if let Ok(got) = got.parse() {
                        self.mapped.push((ioas, got, len));
                        self.user_maps.push((ioas, got, len, va));
                    }
                }
                (
                    format!(
                        "map ioas={ioas} va={va:#x} len={len:#x} flags={flags:#x} iova={iova:#x}"
                    ),
                    c,
                    r,
                )
            }
            41..=45 => {
                let (ioas, len, flags, iova) =
                    (self.ioas(), self.length(), self.flags(), self.iova());
                let start = match self.rng.below(10) {
                    // Offsets past the file, and past what a loff_t holds.
                    0 => self.rng.pick(&[
                        1 << 63,
                        (1 << 63) - PAGE,
                        u64::MAX - PAGE + 1,
                        self.mem.memfd_len,
                        self.mem.memfd_len - PAGE,
                    ]),
                    _ => {
                        self.rng.below(self.mem.memfd_len / PAGE) * PAGE
                            + if self.rng.chance(10) { 5 } else { 0 }
                    }
                };
                let fd = if self.rng.chance(5) {
                    -1
                } else {
                    self.mem.memfd.as_raw_fd()
                };
                let (c, r) =
                    self.both(|f| format!("{:?}", f.map_file(ioas, fd, start, len, flags, iova)));
                if let Some(got) = c.strip_prefix("Ok(").and_then(|s| s.strip_suffix(')')) {
                    if let Ok(got) = got.parse() {
                        self.mapped.push((ioas, got, len));
                        self.file_maps.push((ioas, got, len));
                    }
                }
                (format!("map_file ioas={ioas} start={start:#x} len={len:#x} flags={flags:#x} iova={iova:#x}"), c, r)
            }
            46..=55 => {
                let (src, dst) = (self.ioas(), self.ioas());
                // Mostly a live mapping, from the IOAS that holds it.
                let (src, src_iova, len) = match self.mapped.is_empty() || self.rng.chance(20) {
                    true => (src, self.iova(), self.length()),
                    false => {
                        let (ioas, iova, len) = self.rng.pick(&self.mapped);
                        let len = match self.rng.chance(70) {
                            true => len,
                            false => self.length(),
                        };
                        (if self.rng.chance(90) { ioas } else { src }, iova, len)
                    }
                };
                let (flags, dst_iova) = (self.flags(), self.iova());
                let (c, r) = self
                    .both(|f| format!("{:?}", f.copy(dst, src, src_iova, len, flags, dst_iova)));
                if let Some(got) = c.strip_prefix("Ok(").and_then(|s| s.strip_suffix(')')) {
                    if let Ok(got) = got.parse() {
                        self.mapped.push((dst, got, len));
                    }
                }
                (format!("copy dst={dst} src={src} src_iova={src_iova:#x} len={len:#x} flags={flags:#x} dst_iova={dst_iova:#x}"), c, r)
            }
            56..=75 => {
                let ioas = self.ioas();
                let (iova, len) = match self.rng.below(10) {
                    0 => (0, u64::MAX),
                    1..=5 if !self.mapped.is_empty() => {
                        let (_, iova, len) = self.rng.pick(&self.mapped);
                        (iova, len)
                    }
                    _ => (self.iova(), self.length()),
                };
                let (c, r) = self.both(|f| format!("{:?}", f.unmap(ioas, iova, len)));
                if c.starts_with("Ok(") {
                    self.forget_maps(ioas, iova, len);
                }
                (
                    format!("unmap ioas={ioas} iova={iova:#x} len={len:#x}"),
                    c,
                    r,
                )
            }
            76..=80 => {
                let ioas = self.ioas();
                let n = self.rng.below(4);
                let mut ranges = Vec::new();
                for _ in 0..n {
                    let start = self.iova();
                    let last = start.saturating_add(self.length());
                    ranges.push((start, last));
                }
                let (c, r) = self.both(|f| format!("{}", f.allow_iovas(ioas, &ranges)));
                (format!("allow_iovas ioas={ioas} {ranges:x?}"), c, r)
            }
            81..=85 => {
                let (ioas, room) = (self.ioas(), self.rng.below(4) as u32);
                let (c, r) = self.both(|f| {
                    format!(
                        "{:?}",
                        f.iova_ranges(ioas, room).map(|(v, a)| (
                            v.iter().map(|r| (r.start, r.last)).collect::<Vec<_>>(),
                            a
                        ))
                    )
                });
                (format!("iova_ranges ioas={ioas} room={room}"), c, r)
            }
            86..=90 => {
                let option = self.rng.pick(&[
                    uapi::IOMMU_OPTION_HUGE_PAGES,
                    uapi::IOMMU_OPTION_HUGE_PAGES,
                    uapi::IOMMU_OPTION_RLIMIT_MODE,
                    9,
                ]);
                let op = self.rng.pick(&[0u32, 1, 1, 3]);
                let object = if option == uapi::IOMMU_OPTION_RLIMIT_MODE && self.rng.chance(80) {
                    0
                } else {
                    self.ioas()
                };
                let val = self.rng.pick(&[0u64, 1, 1, 2]);
                let (c, r) = self.both(|f| format!("{:?}", f.option(option, op, object, val)));
                (
                    format!("option id={option} op={op} object={object} val={val}"),
                    c,
                    r,
                )
            }
            91..=92 => {
                let (c, r) = self.both(|f| format!("{}", f.change_process()));
                ("change_process".into(), c, r)
            }
            100..=119 => self.compat_step(),
            120..=124 => self.raw_step(),
            125..=131 => {
                // A mock device on an IOAS, a HWPT, or anything else.
                let pt = self.attach_target();
                let (c, r) = self.both(|f| format!("{:?}", f.mock_domain(pt)));
                self.record_device(&c, pt, false);
                (format!("mock_domain pt={pt}"), c, r)
            }
            132..=134 => {
                let id = match self.devices.is_empty() {
                    true => self.rng.below(12) as u32,
                    false => self.rng.pick(&self.devices).stdev,
                };
                let (c, r) = self.both(|f| format!("{}", f.destroy(id)));
                if c == "0" {
                    self.forget_object(id);
                }
                (format!("destroy_device {id}"), c, r)
            }
            135..=139 => {
                // What a domain maps, read back against the user memory.
                let hwpt = match self.hwpts.is_empty() {
                    true => None,
                    false => Some(self.rng.pick(&self.hwpts)),
                };
                let id = hwpt.map_or_else(|| self.rng.below(12) as u32, |h| h.id);
                // Mostly memory mapped in the HWPT's own IOAS.
                let ioas = hwpt.map(|h| h.ioas);
                let own: Vec<_> = self
                    .user_maps
                    .iter()
                    .filter(|m| Some(m.0) == ioas)
                    .copied()
                    .collect();
                let maps = match own.is_empty() || self.rng.chance(20) {
                    true => self.user_maps.clone(),
                    false => own,
                };
                let (mut iova, mut len, mut va) = match maps.is_empty() {
                    true => (self.iova(), PAGE, self.user_va()),
                    false => {
                        let (_, iova, len, va) = self.rng.pick(&maps);
                        (iova, len.min(64 * PAGE) & !2047, va)
                    }
                };
                // Half pages: the IO page of the default format.
                match self.rng.below(12) {
                    0 => (iova, va) = (iova + K2, va + K2),
                    1 => len = K2,
                    2 => len += K2,
                    _ => {}
                }
                let (c, r) =
                    self.both(|f| format!("{}", f.md_check_map(id, iova, len, va as *const u8)));
                // A HWPT gone with its last device is forgotten.
                if c == "2" {
                    self.forget_object(id);
                }
                let kind = match hwpt {
                    Some(h) if h.huge => "md_check_map.huge",
                    Some(h) if h.manual => "md_check_map.manual",
                    _ => "md_check_map",
                };
                (
                    format!("{kind} hwpt={id} iova={iova:#x} len={len:#x} va={va:#x}"),
                    c,
                    r,
                )
            }
            140..=149 => self.access_step(),
            150..=153 => self.hwpt_alloc_step(),
            154..=155 => self.mock_domain_flags_step(),
            156..=158 => self.replace_step(),
            159..=160 => self.destroy_hwpt_step(),
            161..=162 => self.set_dirty_tracking_step(),
            163..=167 => self.set_dirty_step(),
            168..=172 => self.get_dirty_bitmap_step(),
            173..=174 => self.map_for_dirty_step(),
            175..=177 => self.dirty_cycle_step(),
            178..=181 => self.invalidate_step(),
            182..=183 => self.check_iotlb_step(),
            184..=188 => self.fault_step(),
            189..=190 => self.trigger_iopf_step(),
            191 => self.iopf_cycle_step(),
            192..=199 => self.viommu_step(),
            200..=201 => self.vevent_cycle_step(),
            202..=205 => self.dmabuf_step(),
            _ => {
                let (ioas, start, len) = (self.ioas(), self.iova(), self.length());
                let (c, r) = self.both(|f| format!("{}", f.add_reserved(ioas, start, len)));
                (
                    format!("add_reserved ioas={ioas} start={start:#x} len={len:#x}"),
                    c,
                    r,
                )
            }
        }
    }
}

/// The IO page sizes the steps below pick from.
const K2: u64 = 2048;
const M1: u64 = 1 << 20;

/// Where the hugetlb backing is (see `Backing::new`).
const HUGETLB_BASE: u64 = BACKING_BASE + 8 * M1;

/// HWPT_ALLOC, replace, and dirty tracking.
impl Fuzz {
    /// The HWPT with ID `id`, if the fuzzer knows one.
    fn hwpt(&self, id: u32) -> Option<Hwpt> {
        self.hwpts.iter().find(|h| h.id == id).copied()
    }

    /// Object `id` was destroyed: whatever the fuzzer held under that ID
    /// goes, and so do automatic HWPTs left without a device.
    fn forget_object(&mut self, id: u32) {
        if self.compat_ioas == Some(id) {
            self.compat_ioas = None;
        }
        if self.ids.contains(&id) {
            self.ids.retain(|&i| i != id);
            self.forget_maps(id, 0, u64::MAX);
        }
        self.devices.retain(|d| d.stdev != id && d.idev != id);
        self.hwpts.retain(|h| h.id != id);
        self.nested.retain(|n| n.0 != id);
        self.fault_hwpts.retain(|&h| h != id);
        self.faults.retain(|f| f.0 != id);
        self.viommus.retain(|&v| v != id);
        self.vdevs.retain(|v| v.0 != id);
        self.veventqs.retain(|q| q.0 != id);
        self.hw_queues.retain(|&q| q != id);
        self.prune_auto();
    }

    /// Automatic HWPTs go with their last device.
    fn prune_auto(&mut self) {
        let devices = &self.devices;
        self.hwpts
            .retain(|h| h.manual || devices.iter().any(|d| d.hwpt == h.id));
    }

    /// A new object got `id`: nothing the fuzzer holds still names it.
    fn born(&mut self, id: u32) {
        self.devices.retain(|d| d.stdev != id && d.idev != id);
        self.hwpts.retain(|h| h.id != id);
        self.nested.retain(|n| n.0 != id);
        self.fault_hwpts.retain(|&h| h != id);
        self.faults.retain(|f| f.0 != id);
        self.viommus.retain(|&v| v != id);
        self.vdevs.retain(|v| v.0 != id);
        self.veventqs.retain(|q| q.0 != id);
        self.hw_queues.retain(|&q| q != id);
    }

    /// Where a mock device attaches: a HWPT, an IOAS, or anything else.
    fn attach_target(&mut self) -> u32 {
        match self.rng.below(5) {
            0 if !self.hwpts.is_empty() => self.rng.pick(&self.hwpts).id,
            1 => self.rng.below(12) as u32,
            2 if !self.nested.is_empty() => self.rng.pick(&self.nested).0,
            _ => self.ioas(),
        }
    }

    /// Records the device a `MOCK_DOMAIN(_FLAGS)` on `pt` made, from C's
    /// printed answer, and the automatic HWPT it got, if new.
    fn record_device(&mut self, c: &str, pt: u32, no_dirty: bool) {
        let Ok((stdev, hwpt, idev)) = self.c.mock_domain_parse(c) else {
            return;
        };
        self.born(stdev);
        self.born(idev);
        if self.hwpt(hwpt).is_none() && !self.nested.iter().any(|n| n.0 == hwpt) {
            self.born(hwpt);
            self.hwpts.push(Hwpt {
                id: hwpt,
                ioas: pt,
                manual: false,
                dirty: false,
                huge: false,
                tracking: false,
                parent: false,
            });
        }
        self.devices.push(MockDev {
            stdev,
            idev,
            no_dirty,
            hwpt,
        });
    }

    /// An IOAS for a new HWPT: mostly one a domain already works on (so
    /// that a mock domain's aperture fits its areas), else one with memory
    /// mapped.
    fn busy_ioas(&mut self) -> u32 {
        let with_domain: Vec<u32> = self
            .ids
            .iter()
            .copied()
            .filter(|&i| self.hwpts.iter().any(|h| h.ioas == i))
            .collect();
        let mapped: Vec<u32> = self
            .ids
            .iter()
            .copied()
            .filter(|&i| self.user_maps.iter().any(|m| m.0 == i))
            .collect();
        match self.rng.below(10) {
            0..=6 if !with_domain.is_empty() => self.rng.pick(&with_domain),
            0..=8 if !mapped.is_empty() => self.rng.pick(&mapped),
            _ => self.ioas(),
        }
    }

    /// A HWPT for the dirty-tracking steps: mostly one made with dirty
    /// tracking, else any, else any ID.
    fn dirty_target(&mut self) -> (u32, Option<Hwpt>) {
        if let Some((h, _, _)) = self.focus {
            return (h.id, Some(h));
        }
        let dirty: Vec<Hwpt> = self.hwpts.iter().filter(|h| h.dirty).copied().collect();
        let tracking: Vec<Hwpt> = dirty.iter().filter(|h| h.tracking).copied().collect();
        let h = match self.rng.below(20) {
            0..=9 if !tracking.is_empty() => Some(self.rng.pick(&tracking)),
            0..=15 if !dirty.is_empty() => Some(self.rng.pick(&dirty)),
            0..=18 if !self.hwpts.is_empty() => Some(self.rng.pick(&self.hwpts)),
            _ => None,
        };
        match h {
            Some(h) => (h.id, Some(h)),
            None => {
                let id = match self.rng.chance(50) {
                    true => self.ioas(),
                    false => self.rng.below(16) as u32,
                };
                (id, self.hwpt(id))
            }
        }
    }

    /// `IOMMU_HWPT_ALLOC` of a paging HWPT for a mock device, with every
    /// flag, the selftest driver data in its two formats, and bad IDs,
    /// sizes, lengths and pointers.
    fn hwpt_alloc_step(&mut self) -> (String, Outcome, Outcome) {
        const D: u32 = uapi::IOMMU_HWPT_ALLOC_DIRTY_TRACKING;
        const N: u32 = uapi::IOMMU_HWPT_ALLOC_NEST_PARENT;
        const F: u32 = uapi::IOMMU_HWPT_FAULT_ID_VALID;
        const P: u32 = uapi::IOMMU_HWPT_ALLOC_PASID;
        let dev = match self.devices.is_empty() {
            true => None,
            false => Some(self.rng.pick(&self.devices)),
        };
        let dev_id = match (dev, self.rng.below(10)) {
            (Some(d), 0..=8) => d.idev,
            (Some(d), _) if self.rng.chance(50) => d.stdev,
            _ => self.rng.pick(&[0, 1, 2, 5, 9, u32::MAX]),
        };
        let mut parents: Vec<u32> = self
            .hwpts
            .iter()
            .filter(|h| h.parent)
            .map(|h| h.id)
            .collect();
        parents.extend_from_slice(&self.viommus);
        // A quarter of the calls aim at a nested HWPT on a nest parent or a
        // vIOMMU.
        let aim = match parents.is_empty() || !self.rng.chance(25) {
            true => None,
            false => Some(self.rng.pick(&parents)),
        };
        let pt_id = match self.rng.below(10) {
            _ if aim.is_some() => aim.unwrap_or(0),
            0..=5 => self.busy_ioas(),
            6..=7 if !self.hwpts.is_empty() => self.rng.pick(&self.hwpts).id,
            8 if dev.is_some() => dev.map_or(0, |d| d.idev),
            _ => self.rng.below(12) as u32,
        };
        let flags = match aim {
            Some(_) => self.rng.pick(&[0, 0, P, F, F | P, N]),
            None => self.rng.pick(&[
                0,
                0,
                D,
                D,
                D,
                D,
                D,
                D,
                N,
                N | D,
                P,
                P | D,
                F,
                F | N,
                1 << 4,
                1 << 31,
                D | 1 << 5,
            ]),
        };
        // Driver data: none, the selftest struct (where it ends right
        // before the hole, or with room after it, with a zero or nonzero
        // tail), or another type.
        let room = REGION_BASE + 17 * PAGE + 0x100;
        let cfg = uapi::iommu_hwpt_selftest {
            iotlb: self.rng.next() as u32,
            pagetable_type: self.rng.pick(&[
                uapi::MOCK_IOMMUPT_DEFAULT,
                uapi::MOCK_IOMMUPT_HUGE,
                uapi::MOCK_IOMMUPT_HUGE,
                uapi::MOCK_IOMMUPT_HUGE,
                2,
                u32::MAX,
            ]),
        };
        let (data_type, data_len, data_uptr) = match self.rng.below(20) {
            _ if aim.is_some() && self.rng.chance(90) => (
                uapi::IOMMU_HWPT_DATA_SELFTEST,
                self.rng.pick(&[8u32, 8, 4]),
                room,
            ),
            0..=8 => (uapi::IOMMU_HWPT_DATA_NONE, 0, self.rng.pick(&[0, room])),
            9..=16 => {
                let len = self.rng.pick(&[8u32, 8, 8, 8, 4, 3, 0, 16, 16, 4096]);
                let at = self
                    .rng
                    .pick(&[room, room, room, HWPT_DATA, 0, 0xffff_8000_0000_0000]);
                (uapi::IOMMU_HWPT_DATA_SELFTEST, len, at)
            }
            17 => (uapi::IOMMU_HWPT_DATA_NONE, 8, room),
            _ => (self.rng.pick(&[1u32, 2, 0xbeef]), 8, room),
        };
        let mut data = struct_bytes(&cfg);
        data.resize(64, 0);
        if self.rng.chance(30) {
            data[8 + self.rng.below(8) as usize] = 1;
        }
        for at in [room, HWPT_DATA] {
            region_write(at - REGION_BASE, &data);
        }
        let mut cmd = uapi::iommu_hwpt_alloc {
            size: 0,
            flags,
            dev_id,
            pt_id,
            out_hwpt_id: 0,
            __reserved: if self.rng.chance(4) { 1 } else { 0 },
            data_type,
            data_len,
            data_uptr,
            fault_id: match self.faults.is_empty() || self.rng.chance(30) {
                true => self.rng.pick(&[0, 1, 3, 200]),
                false => self.faults[self.rng.below(self.faults.len() as u64) as usize].0,
            },
            __reserved2: if self.rng.chance(4) { 1 } else { 0 },
        };
        let full = std::mem::size_of::<uapi::iommu_hwpt_alloc>() as u32;
        cmd.size = match self.rng.below(20) {
            0 => 40,
            1 => 24,
            2 => 20,
            3 => full + 8,
            _ => full,
        };
        let tail = self.rng.chance(50) as u8;
        let mut bytes = struct_bytes(&cmd);
        bytes.resize(full as usize + 8, 0);
        bytes[full as usize + 3] = tail;
        let run = |f: &Iommufd| {
            let mut b = bytes.clone();
            let rc = ioctl_bytes(f, uapi::IOMMU_HWPT_ALLOC, &mut b);
            let mut h = 0;
            fold(&mut h, &format!("{b:?}"));
            let id = u32::from_ne_bytes(b[16..20].try_into().unwrap_or([0; 4]));
            match rc {
                0 => format!("Ok({id}) b={h:x}"),
                e => format!("Err({e}) b={h:x}"),
            }
        };
        let (c, r) = (run(&self.c), run(&self.rust));
        let made: Option<u32> = c
            .strip_prefix("Ok(")
            .and_then(|s| s.split(')').next())
            .and_then(|s| s.parse().ok());
        let huge = data_type == uapi::IOMMU_HWPT_DATA_SELFTEST
            && cfg.pagetable_type == uapi::MOCK_IOMMUPT_HUGE;
        if let Some(id) = made {
            self.born(id);
            if flags & F != 0 {
                self.fault_hwpts.push(id);
            }
            if !self.ids.contains(&pt_id) {
                self.nested.push((id, cfg.iotlb));
            } else {
                self.hwpts.push(Hwpt {
                    id,
                    ioas: pt_id,
                    manual: true,
                    dirty: flags & D != 0,
                    huge,
                    tracking: false,
                    parent: flags & N != 0,
                });
            }
        }
        let kind = match self.hwpt(pt_id) {
            Some(_) => "hwpt_alloc_nested",
            None => "hwpt_alloc",
        };
        (
            format!(
                "{kind} dev={dev_id} pt={pt_id} flags={flags:#x} data=({data_type:#x}, {data_len}, {data_uptr:#x}) cfg=({:#x}, {}) size={} reserved={} fault_id={} tail={tail}",
                cfg.iotlb, cfg.pagetable_type, cmd.size, cmd.__reserved, cmd.fault_id
            ),
            c,
            r,
        )
    }

    /// A nested HWPT mostly, else any ID.
    fn nested_target(&mut self) -> u32 {
        match self.rng.below(10) {
            0..=7 if !self.nested.is_empty() => self.rng.pick(&self.nested).0,
            0..=8 if !self.hwpts.is_empty() => self.rng.pick(&self.hwpts).id,
            _ => self.rng.below(12) as u32,
        }
    }

    /// `IOMMU_HWPT_INVALIDATE`: up to three mock requests, good or bad,
    /// with sizes and pointers good or bad; the errno and the count done.
    fn invalidate_step(&mut self) -> (String, Outcome, Outcome) {
        let id = self.nested_target();
        let n = self.rng.below(4);
        let mut reqs = Vec::new();
        for _ in 0..n {
            let flags: u32 = self.rng.pick(&[0, 0, 0, 1, 2]);
            let iotlb_id = self.rng.below(5) as u32;
            reqs.extend_from_slice(&flags.to_ne_bytes());
            reqs.extend_from_slice(&iotlb_id.to_ne_bytes());
        }
        reqs.resize(64, 0);
        if self.rng.chance(10) {
            reqs[8 + self.rng.below(8) as usize] = 1;
        }
        let at = REGION_BASE + 17 * PAGE + 0x200;
        region_write(at - REGION_BASE, &reqs);
        let data_type = self.rng.pick(&[
            uapi::IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
            uapi::IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
            uapi::IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
            uapi::IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID,
            0,
        ]);
        let len = self.rng.pick(&[8u32, 8, 8, 8, 4, 12, 0, 4097]);
        let uptr = self.rng.pick(&[at, at, at, at, 0, HWPT_DATA]);
        let num = match self.rng.below(20) {
            0 => (1 << 19) + 1,
            _ => n as u32,
        };
        let (c, r) = self.both(|f| {
            format!(
                "{:?}",
                f.hwpt_invalidate(id, data_type, uptr as *const u8, len, num)
            )
        });
        (
            format!(
                "hwpt_invalidate hwpt={id} type={data_type:#x} len={len} num={num} uptr={uptr:#x}"
            ),
            c,
            r,
        )
    }

    /// `MD_CHECK_IOTLB` of every entry of a nested HWPT, against the value
    /// it was made with and against 0: which entries match each.
    fn check_iotlb_step(&mut self) -> (String, Outcome, Outcome) {
        let (id, made) = match self.nested.is_empty() || self.rng.chance(10) {
            true => (self.rng.below(12) as u32, 0xbadbeef),
            false => self.rng.pick(&self.nested),
        };
        let (c, r) = self.both(|f| {
            let probe = |v: u32| -> Vec<i32> { (0..5).map(|i| f.check_iotlb(id, i, v)).collect() };
            let (m, z) = (probe(made), probe(0));
            let nested = !m.contains(&2);
            format!("{} made={m:?} zero={z:?}", if nested { "0" } else { "-" })
        });
        (format!("check_iotlb hwpt={id}"), c, r)
    }

    /// `TRIGGER_IOPF` on a device, for the RID or a PASID.
    fn trigger_iopf_step(&mut self) -> (String, Outcome, Outcome) {
        let on_fault: Vec<u32> = self
            .devices
            .iter()
            .filter(|d| self.fault_hwpts.contains(&d.hwpt))
            .map(|d| d.idev)
            .collect();
        let dev = match self.rng.below(10) {
            0..=6 if !on_fault.is_empty() => self.rng.pick(&on_fault),
            0..=8 if !self.devices.is_empty() => self.rng.pick(&self.devices).idev,
            _ => self.rng.below(12) as u32,
        };
        let pasid = self.rng.pick(&[0u32, 0, 1, 100, 2048]);
        let grpid = self.rng.below(8) as u32;
        let addr = self.rng.next() & !0xfff;
        let (c, r) = self.both(|f| format!("{}", f.trigger_iopf(dev, pasid, grpid, addr)));
        (
            format!("trigger_iopf dev={dev} pasid={pasid} grpid={grpid}"),
            c,
            r,
        )
    }

    /// A page fault's round trip: a nested HWPT with one of the fault
    /// queues (made if none), a device moved onto it, faults raised,
    /// read and answered. Each call's answers are compared.
    fn iopf_cycle_step(&mut self) -> (String, Outcome, Outcome) {
        let parents: Vec<u32> = self
            .hwpts
            .iter()
            .filter(|h| h.parent)
            .map(|h| h.id)
            .collect();
        if parents.is_empty() || self.devices.is_empty() {
            return self.hwpt_alloc_step();
        }
        if self.faults.is_empty() {
            return self.fault_step();
        }
        let parent = self.rng.pick(&parents);
        let dev = self.rng.pick(&self.devices);
        let at = self.rng.below(self.faults.len() as u64) as usize;
        let fault = self.faults[at].0;
        let mut data = struct_bytes(&uapi::iommu_hwpt_selftest {
            iotlb: self.rng.next() as u32,
            pagetable_type: 0,
        });
        data.truncate(8);
        let flags = uapi::IOMMU_HWPT_FAULT_ID_VALID;
        let sel = uapi::IOMMU_HWPT_DATA_SELFTEST;
        let (c, r) = self.both(|f| {
            format!(
                "{:?}",
                f.hwpt_alloc_fault(dev.idev, parent, flags, fault, Some((sel, &data)))
            )
        });
        let what = format!("iopf_cycle parent={parent} dev={} fault={fault}", dev.idev);
        if c != r {
            return (what, c, r);
        }
        let Some(hwpt) = c
            .strip_prefix("Ok(")
            .and_then(|s| s.strip_suffix(')'))
            .and_then(|s| s.parse().ok())
        else {
            return (what, c, r);
        };
        self.born(hwpt);
        self.fault_hwpts.push(hwpt);
        self.nested.push((
            hwpt,
            u32::from_ne_bytes([data[0], data[1], data[2], data[3]]),
        ));
        let mut log = vec![c];
        let (c, r) = self.both(|f| format!("{:?}", f.mock_domain_replace(dev.stdev, hwpt)));
        if c != r {
            return (what, c, r);
        }
        if c.starts_with("Ok(") {
            if let Some(d) = self.devices.iter_mut().find(|d| d.stdev == dev.stdev) {
                d.hwpt = hwpt;
            }
            self.prune_auto();
        }
        log.push(c);
        for _ in 0..1 + self.rng.below(3) {
            let pasid = self.rng.pick(&[0u32, 1, 7]);
            let addr = self.rng.next() & !0xfff;
            let (c, r) = self.both(|f| format!("{}", f.trigger_iopf(dev.idev, pasid, 1, addr)));
            if c != r {
                return (what, c, r);
            }
            log.push(c);
        }
        let count = self.rng.pick(&[40usize, 80, 120]);
        let read = |file: &std::fs::File| {
            let mut buf = vec![0u8; 120];
            match sys::read_fd(file, &mut buf, count, None) {
                Ok(n) => format!("Ok({n}) {:?}", &buf[..n]),
                Err(e) => format!("Err({e})"),
            }
        };
        let (c, r) = (read(&self.faults[at].1), read(&self.faults[at].2));
        if c != r {
            return (what, c, r);
        }
        log.push(c);
        let mut bytes = Vec::new();
        for cookie in 1..=self.rng.below(4) as u32 {
            bytes.extend_from_slice(&cookie.to_ne_bytes());
            bytes.extend_from_slice(&self.rng.pick(&[0u32, 1]).to_ne_bytes());
        }
        let c = format!("{:?}", sys::write_fd(&self.faults[at].1, &bytes));
        let r = format!("{:?}", sys::write_fd(&self.faults[at].2, &bytes));
        log.push(c.clone());
        (
            what,
            format!("{log:?}"),
            if c == r { format!("{log:?}") } else { r },
        )
    }

    /// Test dma-bufs: made, mapped into an IOAS (`IOAS_MAP_FILE`; each
    /// side maps its own exporter's), revoked and restored, closed.
    fn dmabuf_step(&mut self) -> (String, Outcome, Outcome) {
        use std::os::fd::AsRawFd;
        match (self.dmabufs.is_empty(), self.rng.below(10)) {
            (true, _) | (_, 0..=1) => {
                let len = self.rng.pick(&[
                    PAGE as u32,
                    4 * PAGE as u32,
                    3 * PAGE as u32 + 5,
                    0,
                    600 * PAGE as u32,
                ]);
                let (c, r) = (self.c.dmabuf_get(len), self.rust.dmabuf_get(len));
                let show = |o: &Result<std::fs::File, i32>| match o {
                    Ok(_) => "Ok(file)".to_string(),
                    Err(e) => format!("Err({e})"),
                };
                let (cs, rs) = (show(&c), show(&r));
                if let (Ok(cf), Ok(rf)) = (c, r) {
                    self.dmabufs.push((cf, rf));
                }
                (format!("dmabuf_get len={len:#x}"), cs, rs)
            }
            (false, 2..=6) => {
                let i = self.rng.below(self.dmabufs.len() as u64) as usize;
                let ioas = self.ioas();
                let start = self.rng.pick(&[0, 0, 0, PAGE, 2 * PAGE, 5]);
                let len = self
                    .rng
                    .pick(&[PAGE, PAGE, 2 * PAGE, 4 * PAGE, 0, 5 * PAGE]);
                let (flags, iova) = (self.flags(), self.iova());
                let c =
                    self.c
                        .map_file(ioas, self.dmabufs[i].0.as_raw_fd(), start, len, flags, iova);
                let r = self.rust.map_file(
                    ioas,
                    self.dmabufs[i].1.as_raw_fd(),
                    start,
                    len,
                    flags,
                    iova,
                );
                let (cs, rs) = (format!("{c:?}"), format!("{r:?}"));
                if let Ok(got) = c {
                    self.mapped.push((ioas, got, len));
                }
                (
                    format!("dmabuf_map ioas={ioas} start={start:#x} len={len:#x} flags={flags:#x} iova={iova:#x}"),
                    cs,
                    rs,
                )
            }
            (false, 7..=8) => {
                let i = self.rng.below(self.dmabufs.len() as u64) as usize;
                let revoked = self.rng.chance(70);
                let c = self.c.dmabuf_revoke(&self.dmabufs[i].0, revoked);
                let r = self.rust.dmabuf_revoke(&self.dmabufs[i].1, revoked);
                (
                    format!("dmabuf_revoke {revoked}"),
                    format!("{c}"),
                    format!("{r}"),
                )
            }
            _ => {
                let i = self.rng.below(self.dmabufs.len() as u64) as usize;
                self.dmabufs.remove(i);
                ("dmabuf_close".into(), "closed".into(), "closed".into())
            }
        }
    }

    /// An event's round trip: on a vIOMMU, a virtual device for a device,
    /// a nested HWPT the device moves onto, a vEVENTQ (each may fail, as
    /// on both sides), events raised, and every vEVENTQ read.
    fn vevent_cycle_step(&mut self) -> (String, Outcome, Outcome) {
        if self.viommus.is_empty() || self.devices.is_empty() {
            return self.viommu_step();
        }
        let viommu = self.rng.pick(&self.viommus);
        let dev = self.rng.pick(&self.devices);
        let virt = self.rng.pick(&[0u64, 1, 0x99]);
        let what = format!(
            "vevent_cycle viommu={viommu} dev={} virt={virt:#x}",
            dev.idev
        );
        let mut log = Vec::new();
        let (c, r) = self.both(|f| format!("{:?}", f.vdevice_alloc(viommu, dev.idev, virt)));
        if c != r {
            return (what, c, r);
        }
        if let Some(id) = c
            .strip_prefix("Ok(")
            .and_then(|s| s.strip_suffix(')'))
            .and_then(|s| s.parse().ok())
        {
            self.born(id);
            self.vdevs.push((id, virt));
        }
        log.push(c);
        let data = [0u8; 8];
        let sel = uapi::IOMMU_HWPT_DATA_SELFTEST;
        let (c, r) = self.both(|f| {
            format!(
                "{:?}",
                f.hwpt_alloc(dev.idev, viommu, 0, Some((sel, &data)))
            )
        });
        if c != r {
            return (what, c, r);
        }
        if let Some(hwpt) = c
            .strip_prefix("Ok(")
            .and_then(|s| s.strip_suffix(')'))
            .and_then(|s| s.parse::<u32>().ok())
        {
            self.born(hwpt);
            self.nested.push((hwpt, 0));
            let (c2, r2) = self.both(|f| format!("{:?}", f.mock_domain_replace(dev.stdev, hwpt)));
            if c2 != r2 {
                return (what, c2, r2);
            }
            if c2.starts_with("Ok(") {
                if let Some(d) = self.devices.iter_mut().find(|d| d.stdev == dev.stdev) {
                    d.hwpt = hwpt;
                }
                self.prune_auto();
            }
            log.push(c2);
        }
        log.push(c);
        let depth = self.rng.pick(&[1u32, 2, 4]);
        let kind = uapi::IOMMU_VEVENTQ_TYPE_SELFTEST;
        let (cq, rq) = (
            self.c.veventq_alloc(viommu, kind, depth, 0),
            self.rust.veventq_alloc(viommu, kind, depth, 0),
        );
        match (cq, rq) {
            (Ok((id, cf)), Ok((_, rf))) => {
                self.born(id);
                self.veventqs.push((id, cf, rf));
                log.push(format!("Ok({id})"));
            }
            (Err(ce), Err(re)) if ce == re => log.push(format!("Err({ce})")),
            (c, r) => {
                return (
                    what,
                    format!("{:?}", c.map(|x| x.0)),
                    format!("{:?}", r.map(|x| x.0)),
                )
            }
        }
        for _ in 0..1 + self.rng.below(5) {
            let (c, r) = self.both(|f| format!("{}", f.trigger_vevent(dev.idev)));
            if c != r {
                return (what, c, r);
            }
            log.push(c);
        }
        for (_, cf, rf) in &self.veventqs {
            let read = |file: &std::fs::File| {
                let mut buf = vec![0u8; 64];
                match sys::read_fd(file, &mut buf, 64, None) {
                    Ok(n) => format!("Ok({n}) {:?}", &buf[..n]),
                    Err(e) => format!("Err({e})"),
                }
            };
            let (c, r) = (read(cf), read(rf));
            if c != r {
                return (what, c, r);
            }
            log.push(c);
        }
        let log = format!("{log:?}");
        (what, log.clone(), log)
    }

    /// vIOMMUs, their virtual devices and event queues: made, destroyed,
    /// read, polled; events raised, device caches invalidated and read.
    fn viommu_step(&mut self) -> (String, Outcome, Outcome) {
        let dev = match self.devices.is_empty() || self.rng.chance(10) {
            true => self.rng.below(12) as u32,
            false => self.rng.pick(&self.devices).idev,
        };
        let viommu = match self.viommus.is_empty() || self.rng.chance(10) {
            true => self.rng.below(12) as u32,
            false => self.rng.pick(&self.viommus),
        };
        let parse_id = |c: &str| -> Option<u32> {
            c.strip_prefix("Ok(")
                .and_then(|s| s.strip_suffix(')'))
                .and_then(|s| s.parse().ok())
        };
        match self.rng.below(12) {
            0..=1 => {
                let parents: Vec<u32> = self
                    .hwpts
                    .iter()
                    .filter(|h| h.parent)
                    .map(|h| h.id)
                    .collect();
                let hwpt = match self.rng.below(10) {
                    0..=6 if !parents.is_empty() => self.rng.pick(&parents),
                    0..=8 if !self.hwpts.is_empty() => self.rng.pick(&self.hwpts).id,
                    _ => self.rng.below(12) as u32,
                };
                let kind = self.rng.pick(&[
                    uapi::IOMMU_VIOMMU_TYPE_SELFTEST,
                    uapi::IOMMU_VIOMMU_TYPE_SELFTEST,
                    uapi::IOMMU_VIOMMU_TYPE_SELFTEST,
                    0,
                    1,
                ]);
                let flags = if self.rng.chance(5) { 1 } else { 0 };
                // Driver data (the mock's MMIO page) of a good size or not;
                // what comes back is compared too.
                let data_len = self.rng.pick(&[0usize, 0, 0, 8, 24, 24, 4, 32]);
                let in_data = self.rng.next() as u32;
                let (c, r) = self.both(|f| {
                    let mut d = [0u8; 32];
                    d[..4].copy_from_slice(&in_data.to_ne_bytes());
                    let data = (data_len != 0).then_some(&mut d[..data_len]);
                    let got = f.viommu_alloc(dev, hwpt, kind, flags, data);
                    format!("{got:?} {:?}", &d[..data_len])
                });
                if let Some(id) = c.split(' ').next().and_then(parse_id) {
                    self.born(id);
                    self.viommus.push(id);
                }
                (
                    format!("viommu_alloc dev={dev} hwpt={hwpt} type={kind:#x} flags={flags}"),
                    c,
                    r,
                )
            }
            2..=3 => {
                let virt = self.rng.pick(&[0u64, 1, 0x99, 0x99, 1 << 40]);
                let (c, r) = self.both(|f| format!("{:?}", f.vdevice_alloc(viommu, dev, virt)));
                if let Some(id) = parse_id(&c) {
                    self.born(id);
                    self.vdevs.push((id, virt));
                }
                (
                    format!("vdevice_alloc viommu={viommu} dev={dev} virt={virt:#x}"),
                    c,
                    r,
                )
            }
            4 => {
                let id = match self.rng.below(3) {
                    0 if !self.vdevs.is_empty() => self.rng.pick(&self.vdevs).0,
                    _ => viommu,
                };
                let (c, r) = self.both(|f| format!("{}", f.destroy(id)));
                if c == "0" {
                    self.forget_object(id);
                }
                (format!("viommu_destroy {id}"), c, r)
            }
            5 => {
                let kind = self.rng.pick(&[
                    uapi::IOMMU_VEVENTQ_TYPE_SELFTEST,
                    uapi::IOMMU_VEVENTQ_TYPE_SELFTEST,
                    0,
                    7,
                ]);
                let depth = self.rng.pick(&[0u32, 1, 2, 2, 4, 1 << 19, (1 << 19) + 1]);
                let flags = if self.rng.chance(5) { 1 } else { 0 };
                let c = self.c.veventq_alloc(viommu, kind, depth, flags);
                let r = self.rust.veventq_alloc(viommu, kind, depth, flags);
                let show = |o: &Result<(u32, std::fs::File), i32>| match o {
                    Ok((id, _)) => format!("Ok({id})"),
                    Err(e) => format!("Err({e})"),
                };
                let (cs, rs) = (show(&c), show(&r));
                if let (Ok((id, cf)), Ok((_, rf))) = (c, r) {
                    self.born(id);
                    self.veventqs.push((id, cf, rf));
                }
                (
                    format!(
                        "veventq_alloc viommu={viommu} type={kind:#x} depth={depth} flags={flags}"
                    ),
                    cs,
                    rs,
                )
            }
            6..=7 if !self.veventqs.is_empty() && self.rng.chance(60) => {
                let i = self.rng.below(self.veventqs.len() as u64) as usize;
                let count = self.rng.pick(&[0usize, 7, 8, 12, 20, 24, 36, 100]);
                let read = |file: &std::fs::File| {
                    let mut buf = vec![0u8; 100];
                    let rd = sys::read_fd(file, &mut buf, count, None);
                    let poll = sys::poll_now(file);
                    match rd {
                        Ok(n) => format!("Ok({n}) {:?} poll={poll:?}", &buf[..n]),
                        Err(e) => format!("Err({e}) poll={poll:?}"),
                    }
                };
                let (id, c, r) = (
                    self.veventqs[i].0,
                    read(&self.veventqs[i].1),
                    read(&self.veventqs[i].2),
                );
                (format!("veventq_read veventq={id} count={count}"), c, r)
            }
            7 if !self.veventqs.is_empty() && self.rng.chance(30) => {
                let i = self.rng.below(self.veventqs.len() as u64) as usize;
                let (id, _, _) = self.veventqs.remove(i);
                let (c, r) = self.both(|f| format!("{}", f.destroy(id)));
                if c == "0" {
                    self.forget_object(id);
                }
                (format!("veventq_close_destroy veventq={id}"), c, r)
            }
            6..=8 => {
                let (c, r) = self.both(|f| format!("{}", f.trigger_vevent(dev)));
                (format!("trigger_vevent dev={dev}"), c, r)
            }
            9 if self.rng.chance(50) => {
                // A HW queue on memory the vIOMMU's IOAS maps, or not.
                let (iova, len) = match self.mapped.is_empty() || self.rng.chance(20) {
                    true => (self.iova(), PAGE),
                    false => {
                        let (_, iova, len) = self.rng.pick(&self.mapped);
                        (iova + self.rng.pick(&[0, 0, 2048]), len.min(2 * PAGE))
                    }
                };
                let kind = self.rng.pick(&[
                    uapi::IOMMU_HW_QUEUE_TYPE_SELFTEST,
                    uapi::IOMMU_HW_QUEUE_TYPE_SELFTEST,
                    0,
                    1,
                ]);
                let index = self.rng.below(3) as u32;
                let (c, r) = self
                    .both(|f| format!("{:?}", f.hw_queue_alloc(viommu, kind, index, iova, len)));
                if let Some(id) = parse_id(&c) {
                    self.born(id);
                    self.hw_queues.push(id);
                }
                (format!("hw_queue_alloc viommu={viommu} type={kind:#x} index={index} iova={iova:#x} len={len:#x}"), c, r)
            }
            9 if !self.hw_queues.is_empty() => {
                let id = self.rng.pick(&self.hw_queues);
                let (c, r) = self.both(|f| format!("{}", f.destroy(id)));
                if c == "0" {
                    self.forget_object(id);
                }
                (format!("hw_queue_destroy {id}"), c, r)
            }
            9 => {
                let (c, r) = self.both(|f| {
                    let probe = |v: u32| -> Vec<i32> {
                        (0..5).map(|i| f.check_dev_cache(dev, i, v)).collect()
                    };
                    format!(
                        "default={:?} zero={:?}",
                        probe(uapi::IOMMU_TEST_DEV_CACHE_DEFAULT),
                        probe(0)
                    )
                });
                (format!("check_dev_cache dev={dev}"), c, r)
            }
            _ => {
                let n = self.rng.below(4);
                let mut reqs = Vec::new();
                for _ in 0..n {
                    let flags: u32 = self.rng.pick(&[0, 0, 0, 1, 2]);
                    let vdev_id: u32 = match self.vdevs.is_empty() || self.rng.chance(20) {
                        true => self.rng.pick(&[0, 1, 0x99]),
                        false => self.rng.pick(&self.vdevs).1 as u32,
                    };
                    let cache_id = self.rng.below(5) as u32;
                    for w in [flags, vdev_id, cache_id] {
                        reqs.extend_from_slice(&w.to_ne_bytes());
                    }
                }
                reqs.resize(64, 0);
                if self.rng.chance(10) {
                    reqs[12 + self.rng.below(4) as usize] = 1;
                }
                let at = REGION_BASE + 17 * PAGE + 0x300;
                region_write(at - REGION_BASE, &reqs);
                let kind = self.rng.pick(&[
                    uapi::IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST,
                    uapi::IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST,
                    uapi::IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST_INVALID,
                ]);
                let len = self.rng.pick(&[12u32, 12, 12, 8, 13, 16, 0]);
                let num = n as u32;
                let (c, r) = self.both(|f| {
                    format!(
                        "{:?}",
                        f.hwpt_invalidate(viommu, kind, at as *const u8, len, num)
                    )
                });
                (
                    format!("viommu_invalidate viommu={viommu} type={kind:#x} len={len} num={num}"),
                    c,
                    r,
                )
            }
        }
    }

    /// Fault queues: made, read, answered, polled, closed or destroyed;
    /// both files are compared byte for byte.
    fn fault_step(&mut self) -> (String, Outcome, Outcome) {
        let at = match self.faults.is_empty() {
            true => None,
            false => Some(self.rng.below(self.faults.len() as u64) as usize),
        };
        match (at, self.rng.below(12)) {
            (None, _) | (_, 0..=1) => {
                let flags = if self.rng.chance(10) { 1 } else { 0 };
                let c = self.c.fault_alloc(flags);
                let r = self.rust.fault_alloc(flags);
                let show = |o: &Result<(u32, std::fs::File), i32>| match o {
                    Ok((id, _)) => format!("Ok({id})"),
                    Err(e) => format!("Err({e})"),
                };
                let (cs, rs) = (show(&c), show(&r));
                if let (Ok((id, cf)), Ok((_, rf))) = (c, r) {
                    self.born(id);
                    self.faults.push((id, cf, rf));
                }
                (format!("fault_alloc flags={flags}"), cs, rs)
            }
            (Some(i), 2..=5) => {
                let count = self.rng.pick(&[0usize, 39, 40, 40, 80, 120, 400]);
                let offset = if self.rng.chance(5) { Some(40) } else { None };
                let read = |file: &std::fs::File| {
                    let mut buf = vec![0u8; 400];
                    match sys::read_fd(file, &mut buf, count, offset) {
                        Ok(n) => format!("Ok({n}) {:?}", &buf[..n]),
                        Err(e) => format!("Err({e})"),
                    }
                };
                let (id, c, r) = (
                    self.faults[i].0,
                    read(&self.faults[i].1),
                    read(&self.faults[i].2),
                );
                (
                    format!("fault_read fault={id} count={count} offset={offset:?}"),
                    c,
                    r,
                )
            }
            (Some(i), 6..=8) => {
                let mut bytes = Vec::new();
                for _ in 0..1 + self.rng.below(3) {
                    let cookie = self.rng.below(5) as u32;
                    let code: u32 = self.rng.pick(&[0, 0, 1, 2]);
                    bytes.extend_from_slice(&cookie.to_ne_bytes());
                    bytes.extend_from_slice(&code.to_ne_bytes());
                }
                if self.rng.chance(5) {
                    bytes.pop();
                }
                let write = |file: &std::fs::File| format!("{:?}", sys::write_fd(file, &bytes));
                let (id, c, r) = (
                    self.faults[i].0,
                    write(&self.faults[i].1),
                    write(&self.faults[i].2),
                );
                (format!("fault_write fault={id} {bytes:?}"), c, r)
            }
            (Some(i), 9) => {
                let (id, c, r) = (
                    self.faults[i].0,
                    format!("{:?}", sys::poll_now(&self.faults[i].1)),
                    format!("{:?}", sys::poll_now(&self.faults[i].2)),
                );
                (format!("fault_poll fault={id}"), c, r)
            }
            (Some(i), 10) => {
                let (id, _, _) = self.faults.remove(i);
                // The queue stays until destroyed; it can no longer be read.
                let (c, r) = self.both(|f| format!("{}", f.destroy(id)));
                (format!("fault_close_destroy fault={id}"), c, r)
            }
            (Some(i), _) => {
                let id = self.faults[i].0;
                let (c, r) = self.both(|f| format!("{}", f.destroy(id)));
                if c == "0" {
                    self.forget_object(id);
                }
                (format!("fault_destroy fault={id}"), c, r)
            }
        }
    }

    /// `MOCK_DOMAIN_FLAGS`: a mock device that cannot track dirty pages
    /// (refused by a dirty-tracking domain), PASID-capable, or unknown
    /// flags.
    fn mock_domain_flags_step(&mut self) -> (String, Outcome, Outcome) {
        let no_dirty = uapi::MOCK_FLAGS_DEVICE_NO_DIRTY;
        let pasid = uapi::MOCK_FLAGS_DEVICE_PASID;
        let flags = self.rng.pick(&[
            0,
            no_dirty,
            no_dirty,
            no_dirty,
            pasid,
            no_dirty | pasid,
            2,
            1 << 31,
        ]);
        let dirty: Vec<u32> = self
            .hwpts
            .iter()
            .filter(|h| h.dirty)
            .map(|h| h.id)
            .collect();
        let pt = match dirty.is_empty() || self.rng.chance(60) {
            true => self.attach_target(),
            false => self.rng.pick(&dirty),
        };
        let run = |f: &Iommufd| {
            let (rc, cmd) = test_cmd(f, uapi::IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS, pt, |c| {
                c.__bindgen_anon_1.mock_domain_flags.dev_flags = flags;
            });
            // SAFETY: The union holds plain integers.
            let o = unsafe { cmd.__bindgen_anon_1.mock_domain_flags };
            match rc {
                0 => format!(
                    "Ok(({}, {}, {}))",
                    o.out_stdev_id, o.out_hwpt_id, o.out_idev_id
                ),
                e => format!("Err({e})"),
            }
        };
        let (c, r) = (run(&self.c), run(&self.rust));
        self.record_device(&c, pt, flags & no_dirty != 0);
        (format!("mock_domain_flags pt={pt} flags={flags:#x}"), c, r)
    }

    /// `MOCK_DOMAIN_REPLACE`: a mock device onto a manual HWPT, an
    /// automatic one, an IOAS, or anything else.
    fn replace_step(&mut self) -> (String, Outcome, Outcome) {
        let at = match self.devices.is_empty() || self.rng.chance(5) {
            true => None,
            false => Some(self.rng.below(self.devices.len() as u64) as usize),
        };
        let stdev = match at {
            Some(i) => self.devices[i].stdev,
            None => self.rng.below(12) as u32,
        };
        let manual: Vec<u32> = self
            .hwpts
            .iter()
            .filter(|h| h.manual)
            .map(|h| h.id)
            .collect();
        let dirty: Vec<u32> = self
            .hwpts
            .iter()
            .filter(|h| h.dirty)
            .map(|h| h.id)
            .collect();
        // A device without dirty tracking is refused by a dirty domain.
        let no_dirty = at.is_some_and(|i| self.devices[i].no_dirty);
        let pt = match self.rng.below(10) {
            0..=1 if !self.fault_hwpts.is_empty() => self.rng.pick(&self.fault_hwpts),
            0 if !self.nested.is_empty() => self.rng.pick(&self.nested).0,
            0..=4 if no_dirty && !dirty.is_empty() => self.rng.pick(&dirty),
            0..=4 if !manual.is_empty() => self.rng.pick(&manual),
            0..=6 if !self.hwpts.is_empty() => self.rng.pick(&self.hwpts).id,
            0..=8 => self.busy_ioas(),
            _ => self.rng.below(12) as u32,
        };
        let run = |f: &Iommufd| {
            let (rc, cmd) = test_cmd(f, uapi::IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, stdev, |c| {
                c.__bindgen_anon_1.mock_domain_replace.pt_id = pt;
            });
            // SAFETY: The union holds plain integers.
            let out = unsafe { cmd.__bindgen_anon_1.mock_domain_replace.pt_id };
            match rc {
                0 => format!("Ok({out})"),
                e => format!("Err({e})"),
            }
        };
        let (c, r) = (run(&self.c), run(&self.rust));
        let got: Option<u32> = c
            .strip_prefix("Ok(")
            .and_then(|s| s.strip_suffix(')'))
            .and_then(|s| s.parse().ok());
        if let (Some(got), Some(dev)) = (got, self.devices.iter().position(|d| d.stdev == stdev)) {
            if self.hwpt(got).is_none() && !self.nested.iter().any(|n| n.0 == got) {
                self.born(got);
                self.hwpts.push(Hwpt {
                    id: got,
                    ioas: pt,
                    manual: false,
                    dirty: false,
                    huge: false,
                    tracking: false,
                    parent: false,
                });
            }
            self.devices[dev].hwpt = got;
            self.prune_auto();
        }
        (format!("replace stdev={stdev} pt={pt}"), c, r)
    }

    /// `IOMMU_DESTROY` of a HWPT: busy while a device is attached.
    fn destroy_hwpt_step(&mut self) -> (String, Outcome, Outcome) {
        let manual: Vec<u32> = self
            .hwpts
            .iter()
            .filter(|h| h.manual)
            .map(|h| h.id)
            .collect();
        let id = match self.rng.below(10) {
            0..=6 if !manual.is_empty() => self.rng.pick(&manual),
            0..=8 if !self.hwpts.is_empty() => self.rng.pick(&self.hwpts).id,
            _ => self.rng.below(12) as u32,
        };
        let (c, r) = self.both(|f| format!("{}", f.destroy(id)));
        if c == "0" {
            self.forget_object(id);
        }
        (format!("destroy_hwpt {id}"), c, r)
    }

    /// `IOMMU_HWPT_SET_DIRTY_TRACKING`: on, off, bad flags, not a HWPT.
    fn set_dirty_tracking_step(&mut self) -> (String, Outcome, Outcome) {
        let (id, h) = self.dirty_target();
        let enable = uapi::IOMMU_HWPT_DIRTY_TRACKING_ENABLE;
        // Mostly a change: turning it on again clears what was recorded.
        let flags = match h.is_some_and(|h| h.tracking) {
            true => self.rng.pick(&[0, 0, 0, 0, enable, 2, 3, 1 << 31]),
            false => self
                .rng
                .pick(&[enable, enable, enable, enable, 0, 2, 3, 1 << 31]),
        };
        let reserved = if self.rng.chance(5) { 7 } else { 0 };
        let cmd = uapi::iommu_hwpt_set_dirty_tracking {
            size: std::mem::size_of::<uapi::iommu_hwpt_set_dirty_tracking>() as u32,
            flags,
            hwpt_id: id,
            __reserved: reserved,
        };
        let (c, r) = self.both(|f| {
            let mut cmd = cmd;
            format!(
                "{}",
                sys::ioctl_struct(&f.file, uapi::IOMMU_HWPT_SET_DIRTY_TRACKING, &mut cmd)
            )
        });
        if c == "0" {
            if let Some(h) = self.hwpts.iter_mut().find(|h| h.id == id) {
                h.tracking = flags & enable != 0;
            }
        }
        (
            format!("set_dirty_tracking hwpt={id} flags={flags:#x} reserved={reserved}"),
            c,
            r,
        )
    }

    /// An IOVA range in the areas of `ioas`, aligned down to `page_size`:
    /// (IOVA, length), or `None` if nothing is mapped there.
    fn area_range(&mut self, ioas: u32) -> Option<(u64, u64)> {
        let own: Vec<(u32, u64, u64)> = self
            .mapped
            .iter()
            .filter(|m| m.0 == ioas)
            .copied()
            .collect();
        if own.is_empty() {
            return None;
        }
        let (_, iova, len) = self.rng.pick(&own);
        Some(match self.rng.below(6) {
            0..=2 => (iova, len),
            3 => {
                // Over the neighbours too, holes included.
                let more = self.rng.pick(&[PAGE, 16 * PAGE, M1]);
                (iova.saturating_sub(more), len.saturating_add(2 * more))
            }
            4 => (iova + PAGE, len.saturating_sub(2 * PAGE)),
            _ => (iova & !(M1 - 1), M1.max(len)),
        })
    }

    /// Marks pages dirty in memory mapped in a dirty-tracking HWPT's IOAS
    /// (turning tracking on first if need be), then reads a bitmap of
    /// that range (`set_dirty` then `get_dirty_bitmap`, aimed), so that
    /// most reads find bits to report.
    fn dirty_cycle_step(&mut self) -> (String, Outcome, Outcome) {
        let dirty: Vec<Hwpt> = self.hwpts.iter().filter(|h| h.dirty).copied().collect();
        if dirty.is_empty() {
            return self.get_dirty_bitmap_step();
        }
        let h = self.rng.pick(&dirty);
        // Memory mapped there, checked with MD_CHECK_MAP (a record found
        // stale goes).
        let ps = if h.huge { PAGE } else { K2 };
        let (mut c, mut r) = (String::new(), String::new());
        let mut found = None;
        for _ in 0..3 {
            let own: Vec<(u32, u64, u64, u64)> = self
                .user_maps
                .iter()
                .filter(|m| m.0 == h.ioas && m.1 % ps == 0 && m.3 % ps == 0 && m.2 >= ps)
                .copied()
                .collect();
            if own.is_empty() {
                break;
            }
            let m = self.rng.pick(&own);
            let len = m.2.min(16 * PAGE) & !(ps - 1);
            let vc = self.c.md_check_map(h.id, m.1, len, m.3 as *const u8);
            let vr = self.rust.md_check_map(h.id, m.1, len, m.3 as *const u8);
            c.push_str(&format!("check {vc}; "));
            r.push_str(&format!("check {vr}; "));
            if vc == 0 {
                found = Some((m.1, m.2));
                break;
            }
            if vc == vr {
                self.user_maps.retain(|x| *x != m);
                self.mapped.retain(|x| *x != (m.0, m.1, m.2));
            }
        }
        let Some((iova, len)) = found else {
            let (w, c2, r2) = self.get_dirty_bitmap_step();
            return (
                format!("{w} (after {c})"),
                format!("{c2} | {c}"),
                format!("{r2} | {r}"),
            );
        };
        if !h.tracking {
            let cmd = uapi::iommu_hwpt_set_dirty_tracking {
                size: std::mem::size_of::<uapi::iommu_hwpt_set_dirty_tracking>() as u32,
                flags: uapi::IOMMU_HWPT_DIRTY_TRACKING_ENABLE,
                hwpt_id: h.id,
                __reserved: 0,
            };
            let (tc, tr) = self.both(|f| {
                let mut cmd = cmd;
                format!(
                    "{}",
                    sys::ioctl_struct(&f.file, uapi::IOMMU_HWPT_SET_DIRTY_TRACKING, &mut cmd)
                )
            });
            if tc == "0" {
                if let Some(x) = self.hwpts.iter_mut().find(|x| x.id == h.id) {
                    x.tracking = true;
                }
            }
            c.push_str(&format!("tracking {tc}; "));
            r.push_str(&format!("tracking {tr}; "));
        }
        let h = self.hwpt(h.id).unwrap_or(h);
        self.focus = Some((h, iova, len.min(64 << 20)));
        let (w1, c1, r1) = self.set_dirty_step();
        let (w2, c2, r2) = self.get_dirty_bitmap_step();
        self.focus = None;
        // The read's answer first: it decides whether the step counts as
        // a success.
        (
            format!("dirty_cycle {w1}; then {w2}"),
            format!("{c2} | {c}mark {c1}"),
            format!("{r2} | {r}mark {r1}"),
        )
    }

    /// `IOMMU_TEST_OP_DIRTY`: marks dirty, in a mock domain, the IO pages
    /// a user bitmap names; page sizes from 1 byte to 1 MiB, odd ones,
    /// bitmaps in the read-only page, the hole or nowhere.
    fn set_dirty_step(&mut self) -> (String, Outcome, Outcome) {
        let (id, h) = self.dirty_target();
        let page_size = match self.focus {
            Some(_) => self
                .rng
                .pick(&[K2, K2, PAGE, PAGE, PAGE, 2 * PAGE, 3 * K2, 1]),
            None => self.rng.pick(&[
                K2,
                K2,
                PAGE,
                PAGE,
                PAGE,
                2 * PAGE,
                M1,
                3 * PAGE,
                3 * K2,
                0,
                1,
            ]),
        };
        let ps = page_size.max(1);
        let area = match (h, self.focus) {
            (_, Some((_, iova, len))) => Some((iova, len)),
            (Some(h), _) if self.rng.chance(85) => self.area_range(h.ioas),
            _ => None,
        };
        let roll = match self.focus {
            Some(_) => 0,
            None => self.rng.below(10),
        };
        let (iova, length) = match (area, roll) {
            (Some((iova, len)), 0..=8) => {
                let iova = iova - iova % ps;
                (iova, len.div_ceil(ps).clamp(1, 4096) * ps)
            }
            (_, 0..=7) => (
                uapi::MOCK_APERTURE_START as u64 + self.rng.below(1024) * PAGE,
                (self.rng.below(64) + 1) * ps,
            ),
            _ => {
                let (iova, any) = (self.iova(), self.length());
                let len = self.rng.pick(&[
                    0,
                    1,
                    PAGE + 1,
                    ps.wrapping_mul((16 << 20) * 8 + 1),
                    u64::MAX,
                    any,
                ]);
                (iova, len)
            }
        };
        // The bits that fit in the region (the kernel reads no further).
        let nbits = if length % ps == 0 {
            (length / ps).min(REGION_PAGES * PAGE * 8)
        } else {
            0
        };
        // One bit in 1, 2, 8 or 64 set: all, or the AND of 1, 3 or 6
        // random bytes.
        let ands = self.rng.pick(&[0u32, 1, 3, 6]);
        let mut bits = vec![0u8; nbits.div_ceil(8) as usize];
        for b in bits.iter_mut() {
            *b = match ands {
                0 => 0xff,
                n => (1..n).fold(self.rng.next() as u8, |x, _| x & self.rng.next() as u8),
            };
        }
        if nbits % 8 != 0 {
            if let Some(last) = bits.last_mut() {
                *last &= (1u8 << (nbits % 8)) - 1;
            }
        }
        // At least one bit, somewhere.
        if nbits > 0 {
            let one = self.rng.below(nbits);
            bits[(one / 8) as usize] |= 1 << (one % 8);
        }
        let offset = match self.focus {
            Some(_) => self.rng.pick(&[0, 0, 0x10, 0xff1, RO_PAGE * PAGE]),
            None => self.rng.pick(&[
                0,
                0,
                0,
                0x10,
                0xff1,
                RO_PAGE * PAGE,
                HOLE_PAGE * PAGE - 0x10,
                HOLE_PAGE * PAGE,
                u64::MAX,
            ]),
        };
        let uptr = match offset {
            u64::MAX => 0,
            off => REGION_BASE + off,
        };
        region_fill(0);
        if uptr != 0 {
            region_write(offset, &bits);
        }
        let run = |f: &Iommufd| {
            let (rc, cmd) = test_cmd(f, uapi::IOMMU_TEST_OP_DIRTY, id, |c| {
                c.__bindgen_anon_1.dirty.iova = iova;
                c.__bindgen_anon_1.dirty.length = length;
                c.__bindgen_anon_1.dirty.page_size = page_size;
                c.__bindgen_anon_1.dirty.uptr = uptr;
            });
            // SAFETY: The union holds plain integers.
            let n = unsafe { cmd.__bindgen_anon_1.dirty.out_nr_dirty };
            format!("{rc} nr={n}")
        };
        let (c, r) = (run(&self.c), run(&self.rust));
        if let Some(n) = c.strip_prefix("0 nr=").and_then(|n| n.parse::<u64>().ok()) {
            self.dirty_stats.marked += n;
            if n > 0 {
                if self.marked.len() == 32 {
                    self.marked.remove(0);
                }
                self.marked.push((id, iova, length));
            }
        }
        let set = bits.iter().map(|b| b.count_ones()).sum::<u32>();
        (
            format!("set_dirty hwpt={id} iova={iova:#x} length={length:#x} page_size={page_size:#x} uptr={uptr:#x} bits={set}"),
            c,
            r,
        )
    }

    /// `IOMMU_HWPT_GET_DIRTY_BITMAP`: with and without `NO_CLEAR`, page
    /// sizes from 1 byte to 2 MiB and odd ones, ranges aligned and not,
    /// over holes, empty and overflowing, bitmaps aligned, unaligned, in
    /// the read-only page, across the hole, NULL, in the kernel or
    /// nowhere; the bytes each side wrote are compared.
    fn get_dirty_bitmap_step(&mut self) -> (String, Outcome, Outcome) {
        let (id, h) = self.dirty_target();
        let no_clear = uapi::IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR;
        let aimed = self.focus.is_some();
        let flags = match aimed {
            true => self.rng.pick(&[0, 0, no_clear]),
            false => self.rng.pick(&[0, 0, 0, no_clear, no_clear, 2, 1 << 31]),
        };
        let reserved = if !aimed && self.rng.chance(4) { 1 } else { 0 };
        let page_size = match aimed {
            true => self
                .rng
                .pick(&[K2, PAGE, PAGE, 2 * PAGE, 16 * PAGE, M1, 3 * PAGE, 1, 512]),
            false => self.rng.pick(&[
                K2,
                PAGE,
                PAGE,
                PAGE,
                2 * PAGE,
                16 * PAGE,
                M1,
                2 * M1,
                3 * PAGE,
                3 * K2,
                0,
                1,
                512,
                1 << 63,
            ]),
        };
        let marked: Vec<(u64, u64)> = self
            .marked
            .iter()
            .filter(|m| m.0 == id)
            .map(|m| (m.1, m.2))
            .collect();
        let area = match h {
            _ if self.focus.is_some() => self.focus.map(|f| (f.1, f.2)),
            Some(_) if !marked.is_empty() && self.rng.chance(50) => Some(self.rng.pick(&marked)),
            Some(h) if self.rng.chance(80) => self.area_range(h.ioas),
            _ => None,
        };
        let roll = match self.focus {
            Some(_) => self.rng.below(7),
            None => self.rng.below(10),
        };
        let (mut iova, mut length) = match (area, roll) {
            (Some((iova, len)), 0..=6) => {
                // Sometimes a part of it, which may cut an IO page.
                let (iova, len) = match self.rng.chance(30) && len > PAGE {
                    true => {
                        let skip = self.rng.below(len / PAGE) * PAGE;
                        let part = (self.rng.below((len - skip) / PAGE) + 1) * PAGE;
                        (iova + skip, part)
                    }
                    false => (iova, len),
                };
                // Mostly aligned to the page size (and the IOAS's).
                let align = page_size.max(PAGE);
                match align.is_power_of_two() && align <= 2 * M1 && self.rng.chance(75) {
                    true => {
                        let start = iova & !(align - 1);
                        let end = iova.saturating_add(len).saturating_add(align - 1) & !(align - 1);
                        (start, end - start)
                    }
                    false => (iova, len),
                }
            }
            (_, 0..=6) => (
                uapi::MOCK_APERTURE_START as u64 + self.rng.below(512) * PAGE,
                (self.rng.below(64) + 1) * PAGE,
            ),
            (_, 7..=8) => self.rng.pick(&[
                (0, 0),
                (0, 1 << 63),
                (u64::MAX - PAGE + 1, PAGE),
                (uapi::MOCK_APERTURE_START as u64, u64::MAX),
                (PAGE, 0),
                (uapi::MOCK_APERTURE_START as u64 + K2, PAGE),
                (uapi::MOCK_APERTURE_START as u64, M1 + K2),
            ]),
            _ => (self.iova(), self.length()),
        };
        let page_size = match page_size {
            1 if self.avoid.c_spins => 512,
            ps => ps,
        };
        if self.avoid.c_spins {
            // The last item of any run of 2 KiB, 1 MiB or 512 MiB items
            // lies in the upper half of a block twice the item: start at
            // that block instead.
            for item in [K2, M1, 512 * M1] {
                let into = iova % (2 * item);
                if iova != 0 && into >= item {
                    (iova, length) = (iova - into, length.wrapping_add(into));
                }
            }
        }
        let offset = match aimed {
            true => self.rng.pick(&[
                0,
                0,
                0x10,
                0xff1,
                0x2000,
                17 * PAGE,
                19 * PAGE,
                RO_PAGE * PAGE - 0x40,
                (RO_PAGE + 1) * PAGE - 0x40,
                HOLE_PAGE * PAGE - 0x40,
            ]),
            false => self.rng.pick(&[
                0,
                0,
                0,
                0x10,
                0xff1,
                RO_PAGE * PAGE - 0x100,
                RO_PAGE * PAGE,
                HOLE_PAGE * PAGE - 0x40,
                (HOLE_PAGE + 1) * PAGE,
                u64::MAX,
                u64::MAX - 1,
                u64::MAX - 2,
                1 << 30,
            ]),
        };
        let data = match offset {
            u64::MAX => 0,
            x if x == u64::MAX - 1 => 8,
            x if x == u64::MAX - 2 => 0xffff_8000_0000_0000,
            off => REGION_BASE + off,
        };
        let fill = match self.rng.below(10) {
            0..=6 => 0u8,
            7 => 0xff,
            _ => 0x5a,
        };
        let mut cmd = uapi::iommu_hwpt_get_dirty_bitmap {
            size: std::mem::size_of::<uapi::iommu_hwpt_get_dirty_bitmap>() as u32,
            hwpt_id: id,
            flags,
            __reserved: reserved,
            iova,
            length,
            page_size,
            data,
        };
        let mut run = |f: &Iommufd| {
            region_fill(fill);
            let before = region_read();
            let rc = sys::ioctl_struct(&f.file, uapi::IOMMU_HWPT_GET_DIRTY_BITMAP, &mut cmd);
            let after = region_read();
            let (n, diff) = region_diff(&before, &after);
            (rc, n, format!("{rc} {diff}"))
        };
        if self.echo {
            println!("# get_dirty_bitmap hwpt={id} iova={iova:#x} length={length:#x} page_size={page_size:#x} data={data:#x} flags={flags:#x}");
        }
        let (rc, n, c) = run(&self.c);
        let (_, _, r) = run(&self.rust);
        if rc == 0 && n > 0 {
            self.dirty_stats.reads_with_bits += 1;
            self.dirty_stats.bytes_changed += n;
        }
        let kind = match h {
            Some(h) if h.huge => "get_dirty_bitmap.huge",
            _ => "get_dirty_bitmap",
        };
        (
            format!("{kind} hwpt={id} flags={flags:#x} reserved={reserved} iova={iova:#x} length={length:#x} page_size={page_size:#x} data={data:#x} fill={fill:#x}"),
            c,
            r,
        )
    }

    /// Memory mapped where dirty tracking and multi-domain fills have
    /// something to chew on: hugetlb memory 1 MiB aligned in IOVA (1 MiB
    /// IO pages in the huge format), or memory at an IOVA 2 KiB off its
    /// page (2 KiB IO pages in the default format).
    fn map_for_dirty_step(&mut self) -> (String, Outcome, Outcome) {
        let manual: Vec<Hwpt> = self.hwpts.iter().filter(|h| h.manual).copied().collect();
        let target = match manual.is_empty() || self.rng.chance(15) {
            true => None,
            false => Some(self.rng.pick(&manual)),
        };
        let ioas = match target {
            Some(h) => h.ioas,
            None => self.busy_ioas(),
        };
        let huge = match target {
            Some(h) => h.huge,
            None => self.rng.chance(50),
        };
        let start = uapi::MOCK_APERTURE_START as u64;
        let (va, len, iova) = if huge {
            let off = self.rng.pick(&[0, 0, M1]);
            let len = match off {
                0 => self.rng.pick(&[M1, 2 * M1, M1 + 64 * 1024]),
                _ => M1,
            };
            let skew = if self.rng.chance(10) { 64 * 1024 } else { 0 };
            (
                HUGETLB_BASE + off,
                len,
                start + self.rng.below(1000) * M1 + skew,
            )
        } else {
            let (base, size) = self.rng.pick(&self.mem.user);
            let len = (self.rng.below(8) + 1) * PAGE;
            let va = base + self.rng.below((size - len) / PAGE + 1) * PAGE;
            (va, len, start + self.rng.below(4096) * PAGE + K2)
        };
        let flags = match self.rng.chance(10) {
            true => READ | FIXED,
            false => RW | FIXED,
        };
        let (c, r) = self.both(|f| format!("{:?}", f.map(ioas, va, len, flags, iova)));
        if c.starts_with("Ok(") {
            self.mapped.push((ioas, iova, len));
            self.user_maps.push((ioas, iova, len, va));
        }
        (
            format!(
                "map_for_dirty ioas={ioas} va={va:#x} len={len:#x} flags={flags:#x} iova={iova:#x}"
            ),
            c,
            r,
        )
    }
}

/// `FUZZ_PROBE=1`: instead of fuzzing, a fixed sequence that shows, side
/// by side, how C and iommufd_rs report dirty pages by IO page table leaf
/// (one item short for contiguous PTEs, and so on) and write bitmaps next to
/// memory they cannot write. One line per call: C's answer, then ours.
fn dirty_probe(c: &Iommufd, rust: &Iommufd) {
    const D: u32 = uapi::IOMMU_HWPT_ALLOC_DIRTY_TRACKING;
    fn alloc(f: &Iommufd, idev: u32, pt: u32, format: Option<u32>) -> String {
        let cfg = uapi::iommu_hwpt_selftest {
            iotlb: 0,
            pagetable_type: format.unwrap_or(0),
        };
        let mut cmd = uapi::iommu_hwpt_alloc {
            size: std::mem::size_of::<uapi::iommu_hwpt_alloc>() as u32,
            flags: D,
            dev_id: idev,
            pt_id: pt,
            ..Default::default()
        };
        if format.is_some() {
            cmd.data_type = uapi::IOMMU_HWPT_DATA_SELFTEST;
            cmd.data_len = 8;
            cmd.data_uptr = &cfg as *const _ as u64;
        }
        match sys::ioctl_struct(&f.file, uapi::IOMMU_HWPT_ALLOC, &mut cmd) {
            0 => format!("{}", cmd.out_hwpt_id),
            e => format!("Err({e})"),
        }
    }
    fn tracking(f: &Iommufd, hwpt: u32) -> i32 {
        let mut cmd = uapi::iommu_hwpt_set_dirty_tracking {
            size: 16,
            flags: uapi::IOMMU_HWPT_DIRTY_TRACKING_ENABLE,
            hwpt_id: hwpt,
            __reserved: 0,
        };
        sys::ioctl_struct(&f.file, uapi::IOMMU_HWPT_SET_DIRTY_TRACKING, &mut cmd)
    }
    /// Marks the one 2 KiB page at `iova`.
    fn mark(f: &Iommufd, hwpt: u32, iova: u64) -> String {
        let bits = [1u8; 8];
        let (rc, cmd) = test_cmd(f, uapi::IOMMU_TEST_OP_DIRTY, hwpt, |c| {
            c.__bindgen_anon_1.dirty.iova = iova;
            c.__bindgen_anon_1.dirty.length = K2;
            c.__bindgen_anon_1.dirty.page_size = K2;
            c.__bindgen_anon_1.dirty.uptr = bits.as_ptr() as u64;
        });
        // SAFETY: The union holds plain integers.
        format!("{rc} nr={}", unsafe {
            cmd.__bindgen_anon_1.dirty.out_nr_dirty
        })
    }
    /// The bits set by a read of `[iova, iova + len)` in 2 KiB pages.
    fn read(f: &Iommufd, hwpt: u32, iova: u64, len: u64, flags: u32) -> String {
        let mut bitmap = vec![0u64; (len / K2).div_ceil(64) as usize];
        let mut cmd = uapi::iommu_hwpt_get_dirty_bitmap {
            size: std::mem::size_of::<uapi::iommu_hwpt_get_dirty_bitmap>() as u32,
            hwpt_id: hwpt,
            flags,
            iova,
            length: len,
            page_size: K2,
            data: bitmap.as_mut_ptr() as u64,
            ..Default::default()
        };
        let rc = sys::ioctl_struct(&f.file, uapi::IOMMU_HWPT_GET_DIRTY_BITMAP, &mut cmd);
        let set: Vec<u64> = (0..len / K2)
            .filter(|&i| bitmap[(i / 64) as usize] & (1 << (i % 64)) != 0)
            .collect();
        let shown = match set.as_slice() {
            [] => "none".to_string(),
            [a] => format!("2K page {a}"),
            [a, .., b] => format!("{} 2K pages, {a}..={b}", set.len()),
        };
        format!("{rc} {shown}")
    }
    /// Marks the 2 KiB pages of `[iova, iova + len)` and reads them into
    /// the region at `offset`: which bytes changed.
    fn write_at(f: &Iommufd, hwpt: u32, iova: u64, len: u64, offset: u64) -> String {
        let bits = vec![0xffu8; (len / K2).div_ceil(8) as usize];
        let _ = test_cmd(f, uapi::IOMMU_TEST_OP_DIRTY, hwpt, |c| {
            c.__bindgen_anon_1.dirty.iova = iova;
            c.__bindgen_anon_1.dirty.length = len;
            c.__bindgen_anon_1.dirty.page_size = K2;
            c.__bindgen_anon_1.dirty.uptr = bits.as_ptr() as u64;
        });
        read_at(f, hwpt, iova, len, K2, offset)
    }
    /// Reads `[iova, iova + len)` in `page_size` pages into the region at
    /// `offset`: which bytes changed.
    fn read_at(f: &Iommufd, hwpt: u32, iova: u64, len: u64, page_size: u64, offset: u64) -> String {
        region_fill(0);
        let before = region_read();
        let mut cmd = uapi::iommu_hwpt_get_dirty_bitmap {
            size: std::mem::size_of::<uapi::iommu_hwpt_get_dirty_bitmap>() as u32,
            hwpt_id: hwpt,
            iova,
            length: len,
            page_size,
            data: REGION_BASE + offset,
            ..Default::default()
        };
        let rc = sys::ioctl_struct(&f.file, uapi::IOMMU_HWPT_GET_DIRTY_BITMAP, &mut cmd);
        let after = region_read();
        let changed: Vec<usize> = (0..after.len())
            .filter(|&i| before[i] != after[i])
            .collect();
        match changed.as_slice() {
            [] => format!("{rc} no byte written"),
            [a, .., b] => format!("{rc} {} bytes written, {a:#x}..={b:#x}", changed.len()),
            [a] => format!("{rc} byte {a:#x} written"),
        }
    }
    let start = uapi::MOCK_APERTURE_START as u64;
    let (big, small, odd) = (0x4000_0000u64, 0x5000_0000u64, 0x5001_0800u64);
    let anon = BACKING_BASE;
    let run = |f: &Iommufd| -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut say = |what: &str, got: String| out.push((what.to_string(), got));
        let ioas = f.ioas_alloc().unwrap_or(0);
        let (_, _, idev) = f.mock_domain(ioas).unwrap_or_default();
        let hwpt: u32 = alloc(f, idev, ioas, None).parse().unwrap_or(0);
        say("default-format dirty HWPT", format!("{hwpt}"));
        say(
            "map 2 MiB hugetlb at 1 GiB",
            format!("{:?}", f.map(ioas, HUGETLB_BASE, 2 * M1, RW | FIXED, big)),
        );
        say(
            "map 16 KiB small pages at 0x50000000",
            format!(
                "{:?}",
                f.map(ioas, anon + 0x10000, 4 * PAGE, RW | FIXED, small)
            ),
        );
        say(
            "map 16 KiB small pages at 0x50010800 (2 KiB off)",
            format!(
                "{:?}",
                f.map(ioas, anon + 0x20000, 4 * PAGE, RW | FIXED, odd)
            ),
        );
        say("tracking on", format!("{}", tracking(f, hwpt)));
        say("mark 1 GiB + 0x3000", mark(f, hwpt, big + 0x3000));
        say(
            "mark 0x50000800 (second half of a 4 KiB page)",
            mark(f, hwpt, small + K2),
        );
        say("mark 0x50011000", mark(f, hwpt, odd + K2));
        say("read the 2 MiB (2K pages)", read(f, hwpt, big, 2 * M1, 0));
        say("mark 1 GiB + 0x3000", mark(f, hwpt, big + 0x3000));
        say(
            "read [1 GiB + 4 KiB, + 4 KiB) in 4 KiB pages into a 1-byte bitmap",
            read_at(f, hwpt, big + PAGE, PAGE, PAGE, 0),
        );
        say(
            "read the 16 KiB at 0x50000000",
            read(f, hwpt, small, 4 * PAGE, 0),
        );
        say(
            "read the 16 KiB at 0x50010800",
            read(f, hwpt, odd, 4 * PAGE, 0),
        );
        // The huge format.
        let ioas2 = f.ioas_alloc().unwrap_or(0);
        let huge: u32 = alloc(f, idev, ioas2, Some(uapi::MOCK_IOMMUPT_HUGE))
            .parse()
            .unwrap_or(0);
        say("huge-format dirty HWPT", format!("{huge}"));
        say(
            "map 2 MiB hugetlb at 1 GiB",
            format!("{:?}", f.map(ioas2, HUGETLB_BASE, 2 * M1, RW | FIXED, big)),
        );
        say(
            "map 16 KiB small pages at 0x50000000",
            format!(
                "{:?}",
                f.map(ioas2, anon + 0x10000, 4 * PAGE, RW | FIXED, small)
            ),
        );
        say("tracking on", format!("{}", tracking(f, huge)));
        say("mark 0x50001000", mark(f, huge, small + PAGE));
        say(
            "read the 16 KiB at 0x50000000",
            read(f, huge, small, 4 * PAGE, 0),
        );
        say("mark 1 GiB + 0x3000", mark(f, huge, big + 0x3000));
        say(
            "read [1 GiB + 512 KiB, + 1 MiB)",
            read(f, huge, big + M1 / 2, M1, 0),
        );
        say("read the 2 MiB again", read(f, huge, big, 2 * M1, 0));
        say(
            "MD_CHECK_MAP huge 2 KiB at 1 GiB",
            format!(
                "{}",
                f.md_check_map(huge, big, K2, HUGETLB_BASE as *const u8)
            ),
        );
        say(
            "MD_CHECK_MAP huge 2 KiB at 1 GiB + 2 KiB",
            format!(
                "{}",
                f.md_check_map(huge, big + K2, K2, (HUGETLB_BASE + K2) as *const u8)
            ),
        );
        // The huge format's aperture reaches 2^38: memory above 2 GiB, in
        // an IOAS with no other domain, and a huge-format HWPT made on an
        // IOAS that has some.
        say(
            "map 4 KiB at 4 GiB in the huge-format HWPT's IOAS",
            format!("{:?}", f.map(ioas2, anon, PAGE, RW | FIXED, 1 << 32)),
        );
        let ioas3 = f.ioas_alloc().unwrap_or(0);
        say(
            "map 4 KiB at 4 GiB in a new IOAS",
            format!("{:?}", f.map(ioas3, anon, PAGE, RW | FIXED, 1 << 32)),
        );
        say(
            "huge-format HWPT on that IOAS",
            alloc(f, idev, ioas3, Some(uapi::MOCK_IOMMUPT_HUGE)),
        );
        // Bitmaps next to memory that cannot be written.
        // 2 MiB of THP memory 2 KiB off: 1024 PTEs of 2 KiB, one record
        // each, 128 bytes of bitmap.
        let thp_odd = 0x6000_0800;
        say(
            "map 2 MiB THP at 0x60000800 (2 KiB off)",
            format!(
                "{:?}",
                f.map(ioas, BACKING_BASE + 4 * M1, 2 * M1, RW | FIXED, thp_odd)
            ),
        );
        for (what, off) in [
            (
                "bitmap: 64 bytes before the read-only page",
                RO_PAGE * PAGE - 64,
            ),
            ("bitmap: 64 bytes before the hole", HOLE_PAGE * PAGE - 64),
            (
                "bitmap: 64 bytes before the end of the read-only page",
                (RO_PAGE + 1) * PAGE - 64,
            ),
        ] {
            say(what, write_at(f, hwpt, odd, 4 * PAGE, off));
            say(
                &format!("{what}, 2 MiB in 1 MiB PTEs"),
                write_at(f, hwpt, big, 2 * M1, off),
            );
            say(
                &format!("{what}, 2 MiB in 2 KiB PTEs"),
                write_at(f, hwpt, thp_odd, 2 * M1, off),
            );
        }
        let _ = start;
        out
    };
    let (a, b) = (run(c), run(rust));
    for ((what, x), (_, y)) in a.iter().zip(&b) {
        let mark = if x == y { "  " } else { "!=" };
        println!("# probe {mark} {what}: C {x} | iommufd_rs {y}");
    }
}

/// What the fuzzer's state was when a step ran.
#[derive(Clone, Copy)]
struct Context {
    /// The container type `VFIO_SET_IOMMU` last accepted (0: none).
    compat_type: u64,
    /// Whether an access held pins.
    pins: bool,
    /// Whether a mock domain existed.
    domain: bool,
    /// Whether an IOAS had two domains or more (automatic and manual).
    multi: bool,
}

impl Fuzz {
    fn context(&self) -> Context {
        Context {
            compat_type: self.compat_type,
            pins: !self.access_items.is_empty(),
            domain: !self.devices.is_empty(),
            multi: self
                .hwpts
                .iter()
                .any(|h| self.hwpts.iter().filter(|o| o.ioas == h.ioas).count() > 1),
        }
    }
}

impl Context {
    /// `op` with the state it met, as counted: so that a path never reached
    /// shows (for example a type1 v1 unmap while an access holds pins).
    fn label(self, op: &str) -> String {
        let mut label = op.to_string();
        if matches!(op, "map_dma" | "unmap_dma") {
            label.push_str(match self.compat_type {
                1 => ".type1",
                3 => ".type1v2",
                _ => ".notype",
            });
        }
        if matches!(
            op,
            "map" | "unmap" | "copy" | "map_dma" | "unmap_dma" | "access_pages" | "map_and_pin"
        ) {
            if self.pins {
                label.push_str("+pins");
            }
            if self.domain {
                label.push_str("+domain");
            }
            if self.multi {
                label.push_str("+multi");
            }
        }
        label
    }
}

/// `outcome` without the dirty bitmaps' bytes (`changed=.. h=..`): which
/// bits a dirty IO page sets depends on the size of its PTE, so on how
/// physically contiguous the memory behind it happened to be in this boot.
/// Both sides see the same memory, so the bytes are compared; they are
/// left out of the trace hash, which a seed alone decides.
fn without_bitmaps(outcome: &str) -> String {
    let mut out = String::new();
    let mut rest = outcome;
    while let Some(at) = rest.find("changed=") {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        match rest.find(" h=") {
            Some(h) => rest = &rest[(h + 3 + 16).min(rest.len())..],
            None => rest = "",
        }
    }
    out.push_str(rest);
    out
}

/// FNV-1a, folding every step's description and both outcomes into one
/// number: two runs with equal hashes made the same calls and saw the
/// same answers (dirty bitmaps' bytes aside, see `without_bitmaps`).
fn fold(hash: &mut u64, text: &str) {
    for b in text.bytes().chain([0]) {
        *hash ^= u64::from(b);
        *hash = hash.wrapping_mul(0x100_0000_01b3);
    }
}

fn main() {
    // Same seed, same addresses: no address-space randomisation.
    sys::exec_without_aslr();
    let args: Vec<String> = std::env::args().collect();
    let seed: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let steps: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let c_node = args.get(3).map_or("/dev/iommu", String::as_str);
    let rust_node = args.get(4).map_or("/dev/iommu_rs", String::as_str);
    println!("KTAP version 1");
    println!("1..1");
    let setup = || -> Result<Fuzz, String> {
        region_map()?;
        Ok(Fuzz {
            c: Iommufd::open_path(c_node)?,
            rust: Iommufd::open_path(rust_node)?,
            rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
            mem: Backing::new()?,
            ids: Vec::new(),
            mapped: Vec::new(),
            user_maps: Vec::new(),
            file_maps: Vec::new(),
            devices: Vec::new(),
            hwpts: Vec::new(),
            dirty_stats: DirtyStats::default(),
            marked: Vec::new(),
            focus: None,
            avoid: Avoid::from_env(),
            echo: false,
            scratch: Box::new([0; 4096]),
            accesses: Vec::new(),
            nested: Vec::new(),
            fault_hwpts: Vec::new(),
            faults: Vec::new(),
            viommus: Vec::new(),
            vdevs: Vec::new(),
            veventqs: Vec::new(),
            hw_queues: Vec::new(),
            dmabufs: Vec::new(),
            access_items: Vec::new(),
            compat_type: 0,
            compat_ioas: None,
        })
    };
    let mut fuzz = match setup() {
        Ok(f) => f,
        Err(e) => {
            println!("# setup: {e}");
            println!("not ok 1 fuzz seed={seed} steps={steps}");
            std::process::exit(1);
        }
    };
    if std::env::var("FUZZ_PROBE").is_ok_and(|v| v == "1") {
        dirty_probe(&fuzz.c, &fuzz.rust);
        println!("ok 1 fuzz probe");
        return;
    }
    // Per operation in its context: (calls, successes), to show the mix
    // reaches real work.
    let mut stats: Vec<(String, u64, u64)> = Vec::new();
    // FUZZ_FAILURES=1 counts the failing answers per operation too, to see
    // why an operation rarely succeeds.
    let fails_wanted = std::env::var("FUZZ_FAILURES").is_ok_and(|v| v == "1");
    // (operation and answer, how often, the first such step)
    let mut failures: Vec<(String, u64, String)> = Vec::new();
    // FUZZ_TRACE=N prints the last N steps before a divergence.
    let trace: usize = std::env::var("FUZZ_TRACE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut recent: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    // FUZZ_SHOW=op,op prints every step of those operations as it runs.
    let show: Vec<String> = std::env::var("FUZZ_SHOW")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    // FUZZ_SLOW=MS prints the steps that took longer than MS milliseconds.
    let slow: Option<u128> = std::env::var("FUZZ_SLOW").ok().and_then(|v| v.parse().ok());
    let echo_from: u64 = std::env::var("FUZZ_ECHO")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    for step in 1..=steps {
        if step >= echo_from {
            fuzz.echo = true;
            println!("# step {step}");
        }
        let met = fuzz.context();
        let began = std::time::Instant::now();
        let (what, c, r) = fuzz.step();
        if let Some(ms) = slow {
            let took = began.elapsed().as_millis();
            if took > ms {
                println!(
                    "# slow: {step}: {took} ms: {}",
                    what.chars().take(300).collect::<String>()
                );
            }
        }
        fold(&mut hash, &what);
        fold(&mut hash, &without_bitmaps(&c));
        fold(&mut hash, &without_bitmaps(&r));
        if trace > 0 {
            if recent.len() == trace {
                recent.pop_front();
            }
            recent.push_back(format!("# {step}: {what} -> {c}"));
        }
        let op = met.label(what.split(' ').next().unwrap_or(""));
        if show.iter().any(|s| op.starts_with(s.as_str())) {
            println!("# {step}: {what} -> {c}");
        }
        let ok = u64::from(
            c.starts_with("Ok(")
                || c == "0"
                || c == "closed"
                || c.starts_with("(0,")
                || c.starts_with("0 "),
        );
        if ok == 0 && fails_wanted {
            // The answer without its payload: `Err(22)`, `22`, `(2, ..)`.
            let head: String = c.chars().take_while(|&ch| ch != ',' && ch != ' ').collect();
            let key = format!("{op} {head}");
            match failures.iter_mut().find(|f| f.0 == key) {
                Some(f) => f.1 += 1,
                None => failures.push((key, 1, what.clone())),
            }
        }
        match stats.iter_mut().find(|s| s.0 == op) {
            Some(s) => {
                s.1 += 1;
                s.2 += ok;
            }
            None => stats.push((op, 1, ok)),
        }
        if c != r {
            for line in &recent {
                println!("{line}");
            }
            println!("# divergence at seed={seed} step={step}: {what}");
            println!("#   C iommufd:  {c}");
            println!("#   iommufd_rs: {r}");
            println!("# reproduce: make fuzz SEED={seed} STEPS={step} (FUZZ_TRACE=40 for the steps before)");
            println!("not ok 1 fuzz seed={seed} steps={steps}");
            std::process::exit(1);
        }
    }
    stats.sort();
    let mix: Vec<String> = stats
        .iter()
        .map(|(op, n, ok)| format!("{op} {ok}/{n}"))
        .collect();
    println!("# succeeded/called: {}", mix.join(", "));
    if fails_wanted {
        failures.sort_by_key(|f| std::cmp::Reverse(f.1));
        for (key, n, first) in &failures {
            println!("# failed: {key} x{n}, first: {first}");
        }
    }
    let d = &fuzz.dirty_stats;
    println!(
        "# dirty: {} pages marked, {} bitmaps read with bits set ({} bytes); avoiding: {:?}",
        d.marked, d.reads_with_bits, d.bytes_changed, fuzz.avoid
    );
    println!(
        "# fuzz: {steps} steps, 0 divergences, {} live IOAS, {} maps seen, trace hash {hash:016x}",
        fuzz.ids.len(),
        fuzz.mapped.len()
    );
    println!("ok 1 fuzz seed={seed} steps={steps}");
}
