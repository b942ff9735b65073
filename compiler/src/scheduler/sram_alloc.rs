//! SRAM allocation: an address range for every buffer, for exactly its lifetime.
//!
//! With a static schedule every buffer's lifetime is known, so allocation is offline packing of
//! rectangles (time x address). We place buffers largest first at the lowest aligned address that
//! no time-overlapping buffer uses (greedy by size, as TFLite's arena planner does): simple,
//! deterministic, and close to the lower bound (the peak of live bytes) on dataflow graphs.

/// When a buffer occupies SRAM: `[alloc, free)`; `free == u64::MAX` means until the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetime {
    pub alloc: u64,
    pub free: u64,
}

impl Lifetime {
    pub const WHOLE_PROGRAM: Lifetime = Lifetime {
        alloc: 0,
        free: u64::MAX,
    };

    fn overlaps(&self, other: &Lifetime) -> bool {
        self.alloc < other.free && other.alloc < self.free
    }
}

/// Most bytes live at once, and the first cycle at which that happens.
pub fn peak_live(sizes: &[u64], lifetimes: &[Lifetime]) -> (u64, u64) {
    // (cycle, 0 = free before 1 = alloc, signed delta)
    let mut events: Vec<(u64, u8, i128)> = Vec::with_capacity(2 * sizes.len());
    for (&b, l) in sizes.iter().zip(lifetimes) {
        events.push((l.alloc, 1, i128::from(b)));
        if l.free != u64::MAX {
            events.push((l.free, 0, -i128::from(b)));
        }
    }
    events.sort_unstable();
    let (mut live, mut peak, mut peak_cycle) = (0i128, 0i128, 0u64);
    let mut i = 0;
    while i < events.len() {
        let cycle = events[i].0;
        while i < events.len() && events[i].0 == cycle {
            live += events[i].2;
            i += 1;
        }
        if live > peak {
            peak = live;
            peak_cycle = cycle;
        }
    }
    (peak as u64, peak_cycle)
}

/// Offsets for every buffer (aligned to `align` bytes) and the highest address used.
///
/// Greedy by size first; when that leaves the highest address above `limit` (the chip's SRAM), the
/// longest-lived buffers are placed first instead and the lower of the two packings is kept.
/// Size order is close to the peak on most programs, but where many small buffers outlive the
/// large ones beside them (pieces of a collective waiting for their sum, next to whole keys and
/// values) it strands gaps above the large ones; placing the long-lived first stacks them under
/// everything that comes and goes. Both orders are fixed, so the answer is deterministic.
pub fn allocate(sizes: &[u64], lifetimes: &[Lifetime], align: u64, limit: u64) -> (Vec<u64>, u64) {
    let mut by_size: Vec<usize> = (0..sizes.len()).collect();
    by_size.sort_by_key(|&i| (std::cmp::Reverse(sizes[i]), lifetimes[i].alloc, i));
    let first = pack(sizes, lifetimes, align, &by_size);
    if first.1 <= limit {
        return first;
    }
    let mut by_life = by_size;
    by_life.sort_by_key(|&i| {
        let life = lifetimes[i].free.saturating_sub(lifetimes[i].alloc);
        (std::cmp::Reverse(life), std::cmp::Reverse(sizes[i]), i)
    });
    let second = pack(sizes, lifetimes, align, &by_life);
    if second.1 < first.1 {
        second
    } else {
        first
    }
}

/// Places buffers in `order`, each at the lowest aligned address no time-overlapping buffer placed
/// before it uses.
fn pack(sizes: &[u64], lifetimes: &[Lifetime], align: u64, order: &[usize]) -> (Vec<u64>, u64) {
    let align = align.max(1);
    let mut offsets = vec![0u64; sizes.len()];
    let mut placed: Vec<usize> = Vec::with_capacity(sizes.len());
    let mut high_water = 0u64;
    for &i in order {
        let mut taken: Vec<(u64, u64)> = placed
            .iter()
            .filter(|&&j| sizes[j] > 0 && lifetimes[j].overlaps(&lifetimes[i]))
            .map(|&j| (offsets[j], offsets[j] + sizes[j]))
            .collect();
        taken.sort_unstable();
        let mut candidate = 0u64;
        for (start, end) in taken {
            if candidate.saturating_add(sizes[i]) <= start {
                break;
            }
            candidate = candidate.max(end.div_ceil(align).saturating_mul(align));
        }
        offsets[i] = candidate;
        high_water = high_water.max(candidate.saturating_add(sizes[i]));
        placed.push(i);
    }
    (offsets, high_water)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lt(alloc: u64, free: u64) -> Lifetime {
        Lifetime { alloc, free }
    }

    #[test]
    fn disjoint_lifetimes_share_addresses() {
        let sizes = [100, 100, 50];
        let lts = [lt(0, 10), lt(10, 20), lt(5, 15)];
        let (offsets, high) = allocate(&sizes, &lts, 1, u64::MAX);
        assert_eq!(offsets[0], offsets[1]);
        assert_eq!(high, 150);
        assert_eq!(peak_live(&sizes, &lts), (150, 5));
    }

    #[test]
    fn no_two_overlapping_buffers_share_bytes() {
        let sizes = [640, 320, 960, 100, 320];
        let lts = [lt(0, 30), lt(5, 8), lt(7, 40), Lifetime::WHOLE_PROGRAM, lt(8, 9)];
        let (offsets, high) = allocate(&sizes, &lts, 320, u64::MAX);
        assert!(offsets.iter().all(|o| o % 320 == 0));
        assert_disjoint(&offsets, &sizes, &lts);
        assert!(high >= peak_live(&sizes, &lts).0);
    }

    #[test]
    fn an_overflowing_size_order_falls_back_to_the_longest_lived_first() {
        // Size order puts the short-lived 50s at 0 and strands the 20 above the first of them, so
        // the last 50 goes on top of it (120); the long-lived first reach the live peak (100).
        let sizes = [50, 50, 20, 50];
        let lts = [lt(3, 7), lt(8, 15), lt(6, 9), lt(0, 4)];
        assert_eq!(peak_live(&sizes, &lts).0, 100);
        assert_eq!(allocate(&sizes, &lts, 1, u64::MAX).1, 120);
        let (offsets, high) = allocate(&sizes, &lts, 1, 100);
        assert_eq!(high, 100);
        assert_disjoint(&offsets, &sizes, &lts);
    }

    /// No two buffers live at the same time share a byte.
    fn assert_disjoint(offsets: &[u64], sizes: &[u64], lts: &[Lifetime]) {
        for i in 0..sizes.len() {
            for j in 0..i {
                if lts[i].overlaps(&lts[j]) {
                    let (a, b) = (
                        (offsets[i], offsets[i] + sizes[i]),
                        (offsets[j], offsets[j] + sizes[j]),
                    );
                    assert!(a.1 <= b.0 || b.1 <= a.0, "{i} and {j} overlap");
                }
            }
        }
    }
}
