//! Boxes of a tensor (a half-open range per axis, in the whole tensor's coordinates) and copying
//! between row-major buffers that each hold one box.

/// `[lo, hi)` per axis.
pub type Region = Vec<(u64, u64)>;

/// Elements in `r`.
pub fn volume(r: &Region) -> u64 {
    r.iter().map(|&(lo, hi)| hi - lo).product()
}

/// The common part of `a` and `b`, if any.
pub fn intersect(a: &Region, b: &Region) -> Option<Region> {
    let r: Region = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x.0.max(y.0), x.1.min(y.1)))
        .collect();
    r.iter().all(|&(lo, hi)| lo < hi).then_some(r)
}

/// Whether `outer` holds all of `inner`.
pub fn contains(outer: &Region, inner: &Region) -> bool {
    outer.iter().zip(inner).all(|(o, i)| o.0 <= i.0 && i.1 <= o.1)
}

/// Copy the elements of `part` from `src` (holding `src_box`) to `dst` (holding `dst_box`);
/// `part` must lie in both. Rows along the last axis are copied whole.
pub fn copy_box(src: &[f64], src_box: &Region, dst: &mut [f64], dst_box: &Region, part: &Region) {
    let rank = part.len();
    if volume(part) == 0 {
        return;
    }
    if rank == 0 {
        dst[0] = src[0];
        return;
    }
    let strides = |b: &Region| {
        let mut s = vec![1u64; rank];
        for k in (0..rank - 1).rev() {
            s[k] = s[k + 1] * (b[k + 1].1 - b[k + 1].0);
        }
        s
    };
    let (ss, ds) = (strides(src_box), strides(dst_box));
    let row = (part[rank - 1].1 - part[rank - 1].0) as usize;
    // Walk every index of `part` but the last axis, odometer style.
    let mut idx: Vec<u64> = part.iter().map(|p| p.0).collect();
    loop {
        let offset = |b: &Region, s: &[u64]| -> usize {
            idx.iter()
                .zip(b)
                .zip(s)
                .map(|((&i, r), &st)| (i - r.0) * st)
                .sum::<u64>() as usize
        };
        let (so, d_o) = (offset(src_box, &ss), offset(dst_box, &ds));
        dst[d_o..d_o + row].copy_from_slice(&src[so..so + row]);
        let mut k = rank - 1;
        loop {
            if k == 0 {
                return;
            }
            k -= 1;
            idx[k] += 1;
            if idx[k] < part[k].1 {
                break;
            }
            idx[k] = part[k].0;
        }
    }
}

/// Elements of `whole` that at least one of `boxes` (each inside it) holds.
pub fn union_volume(boxes: &[Region], whole: &Region) -> u64 {
    let mut seen = vec![false; volume(whole) as usize];
    let rank = whole.len();
    let mut strides = vec![1u64; rank];
    for k in (0..rank.saturating_sub(1)).rev() {
        strides[k] = strides[k + 1] * (whole[k + 1].1 - whole[k + 1].0);
    }
    for b in boxes.iter().filter(|b| volume(b) > 0) {
        if rank == 0 {
            seen[0] = true;
            continue;
        }
        // Odometer over every index of the box but the last axis; rows marked whole.
        let mut idx: Vec<u64> = b.iter().map(|r| r.0).collect();
        loop {
            let start: u64 = idx
                .iter()
                .zip(whole)
                .zip(&strides)
                .map(|((&i, w), &s)| (i - w.0) * s)
                .sum();
            let row = b[rank - 1].1 - b[rank - 1].0;
            seen[start as usize..(start + row) as usize]
                .iter_mut()
                .for_each(|x| *x = true);
            let mut k = rank - 1;
            loop {
                if k == 0 {
                    break;
                }
                k -= 1;
                idx[k] += 1;
                if idx[k] < b[k].1 {
                    break;
                }
                idx[k] = b[k].0;
            }
            if idx[..rank - 1].iter().zip(b).all(|(&i, r)| i == r.0) {
                break;
            }
        }
    }
    seen.iter().filter(|&&x| x).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_lands_where_its_coordinates_say() {
        // A 2x3 box at rows 1..3, cols 1..4 of a 3x4 whole.
        let src: Vec<f64> = (0..6).map(f64::from).collect();
        let src_box = vec![(1, 3), (1, 4)];
        let whole = vec![(0, 3), (0, 4)];
        let mut dst = vec![0.0; 12];
        copy_box(&src, &src_box, &mut dst, &whole, &vec![(1, 3), (2, 4)]);
        assert_eq!(dst, [0., 0., 0., 0., 0., 0., 1., 2., 0., 0., 4., 5.]);
        assert_eq!(union_volume(&[src_box.clone(), vec![(0, 1), (0, 4)]], &whole), 10);
        assert_eq!(intersect(&src_box, &vec![(0, 1), (0, 4)]), None);
    }
}
