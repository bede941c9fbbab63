// SPDX-License-Identifier: GPL-2.0

//! Differential fuzzer: the same seeded sequence of valid and invalid
//! ioctls against C iommufd and iommufd_rs, loaded side by side (ours under
//! another node name), comparing every result.
//!
//! Usage: `iommufd_fuzz SEED STEPS [C_NODE RUST_NODE]`. On the first
//! divergence it prints the seed, the step and both answers, and exits 1;
//! replaying the same seed with STEPS set to that step reproduces it.
//! Prints one KTAP result line.

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
    /// Mock devices (stdev IDs) and the HWPTs they reported.
    devices: Vec<u32>,
    hwpts: Vec<u32>,
    /// HWPTs made on an IOAS: (HWPT, IOAS).
    hwpt_ioas: Vec<(u32, u32)>,
    /// Where pointer fields of hostile structs point.
    scratch: Box<[u8; 4096]>,
    /// Open mock accesses: (C's file, ours, IOAS). Their descriptor
    /// numbers differ, so they are compared by position here.
    accesses: Vec<(std::fs::File, std::fs::File, u32)>,
    /// Pinned items: (access position, item ID).
    access_items: Vec<(usize, u32)>,
    /// The last container type `VFIO_SET_IOMMU` accepted (0: none yet).
    compat_type: u64,
}

/// One step's outcome on one side, printed on divergence.
type Outcome = String;

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
            // Inside the mock domains' aperture, so that maps reach them.
            2..=3 => uapi::MOCK_APERTURE_START as u64 + self.rng.below(1024) * PAGE,
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
        (op(&self.c), op(&self.rust))
    }

    /// Hostile input: a random (mostly garbage) struct of a random size for an
    /// implemented ioctl, or a bad pointer, on both sides; the errno and
    /// every byte written back must match.
    fn raw_step(&mut self) -> (String, Outcome, Outcome) {
        // (number, struct size, offset of a user pointer field, if any)
        let table: [(u32, usize, Option<usize>); 14] = [
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
        ];
        let (num, size, ptr_field) = self.rng.pick(&table);
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
            ]);
            buf[4..8].copy_from_slice(&op.to_ne_bytes());
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
                let (c, r) = self.both(|f| format!("{:?}", f.vfio_get_info(argsz, len)));
                (format!("get_info argsz={argsz}"), c, r)
            }
            3..=6 => {
                let mut flags = self.rng.pick(&[3u32, 3, 1, 2, 0, 4, 1 << 31]);
                // C 7.2 maps a MAP_DMA with neither READ nor WRITE into the
                // domains, where the mock's page table WARNs (generic_pt
                // map_range); try that only while no domain exists.
                if flags == 0 && !self.devices.is_empty() {
                    flags = 3;
                }
                let (va, iova, size) = (self.user_va(), self.iova(), self.length());
                let (c, r) = self.both(|f| format!("{}", f.vfio_map(flags, va, iova, size)));
                if c == "0" {
                    if let Some(id) = self.ids.first().copied() {
                        self.mapped.push((id, iova, size));
                    }
                }
                (
                    format!("map_dma flags={flags:#x} va={va:#x} iova={iova:#x} size={size:#x}"),
                    c,
                    r,
                )
            }
            _ => {
                let flags = self.rng.pick(&[0u32, 0, 0, 2, 1, 4]);
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
        let roll = match self.rng.below(150) {
            r @ 0..=7 if self.ids.len() >= 6 => r + 8,
            r => r,
        };
        match roll {
            0..=7 => {
                let (c, r) = self.both(|f| format!("{:?}", f.ioas_alloc()));
                if let Some(id) = c.strip_prefix("Ok(").and_then(|s| s.strip_suffix(')')) {
                    if let Ok(id) = id.parse() {
                        self.ids.push(id);
                    }
                }
                ("ioas_alloc".into(), c, r)
            }
            8..=10 => {
                let id = self.ioas();
                let (c, r) = self.both(|f| format!("{}", f.destroy(id)));
                if c == "0" {
                    self.ids.retain(|&i| i != id);
                    self.forget_maps(id, 0, u64::MAX);
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
                let pt = match self.rng.below(4) {
                    0 if !self.hwpts.is_empty() => self.rng.pick(&self.hwpts),
                    1 => self.rng.below(12) as u32,
                    _ => self.ioas(),
                };
                let (c, r) = self.both(|f| format!("{:?}", f.mock_domain(pt)));
                if let Ok((stdev, hwpt, _)) = self.c.mock_domain_parse(&c) {
                    self.devices.push(stdev);
                    if !self.hwpts.contains(&hwpt) {
                        self.hwpts.push(hwpt);
                    }
                    // Attached to an IOAS (else `pt` was that HWPT).
                    if pt != hwpt {
                        self.hwpt_ioas.push((hwpt, pt));
                    }
                }
                (format!("mock_domain pt={pt}"), c, r)
            }
            132..=134 => {
                let id = match self.devices.is_empty() {
                    true => self.rng.below(12) as u32,
                    false => self.rng.pick(&self.devices),
                };
                let (c, r) = self.both(|f| format!("{}", f.destroy(id)));
                if c == "0" {
                    self.devices.retain(|&d| d != id);
                }
                (format!("destroy_device {id}"), c, r)
            }
            135..=139 => {
                // What a domain maps, read back against the user memory.
                let hwpt = match self.hwpts.is_empty() {
                    true => self.rng.below(12) as u32,
                    false => self.rng.pick(&self.hwpts),
                };
                // Mostly memory mapped in the HWPT's own IOAS.
                let ioas = self.hwpt_ioas.iter().find(|h| h.0 == hwpt).map(|h| h.1);
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
                let (iova, len, va) = match maps.is_empty() {
                    true => (self.iova(), PAGE, self.user_va()),
                    false => {
                        let (_, iova, len, va) = self.rng.pick(&maps);
                        (iova, len.min(64 * PAGE) & !2047, va)
                    }
                };
                let (c, r) =
                    self.both(|f| format!("{}", f.md_check_map(hwpt, iova, len, va as *const u8)));
                // A HWPT gone with its last device is forgotten.
                if c == "2" {
                    self.hwpts.retain(|&h| h != hwpt);
                    self.hwpt_ioas.retain(|h| h.0 != hwpt);
                }
                (
                    format!("md_check_map hwpt={hwpt} iova={iova:#x} len={len:#x} va={va:#x}"),
                    c,
                    r,
                )
            }
            140..=149 => self.access_step(),
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

/// What the fuzzer's state was when a step ran.
#[derive(Clone, Copy)]
struct Context {
    /// The container type `VFIO_SET_IOMMU` last accepted (0: none).
    compat_type: u64,
    /// Whether an access held pins.
    pins: bool,
    /// Whether a mock domain existed.
    domain: bool,
}

impl Fuzz {
    fn context(&self) -> Context {
        Context {
            compat_type: self.compat_type,
            pins: !self.access_items.is_empty(),
            domain: !self.devices.is_empty(),
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
        }
        label
    }
}

/// FNV-1a, folding every step's description and both outcomes into one
/// number: two runs with equal hashes made the same calls and saw the
/// same answers.
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
            hwpt_ioas: Vec::new(),
            scratch: Box::new([0; 4096]),
            accesses: Vec::new(),
            access_items: Vec::new(),
            compat_type: 0,
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
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for step in 1..=steps {
        let met = fuzz.context();
        let (what, c, r) = fuzz.step();
        fold(&mut hash, &what);
        fold(&mut hash, &c);
        fold(&mut hash, &r);
        if trace > 0 {
            if recent.len() == trace {
                recent.pop_front();
            }
            recent.push_back(format!("# {step}: {what} -> {c}"));
        }
        let op = met.label(what.split(' ').next().unwrap_or(""));
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
        failures.sort_by(|a, b| b.1.cmp(&a.1));
        for (key, n, first) in &failures {
            println!("# failed: {key} x{n}, first: {first}");
        }
    }
    println!(
        "# fuzz: {steps} steps, 0 divergences, {} live IOAS, {} maps seen, trace hash {hash:016x}",
        fuzz.ids.len(),
        fuzz.mapped.len()
    );
    println!("ok 1 fuzz seed={seed} steps={steps}");
}
