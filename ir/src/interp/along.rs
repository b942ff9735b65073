//! Reference kernels that select along one axis: ArgMax/ArgMin, Hardmax and GatherElements.

use super::tensor::Tensor;

/// Outer, axis and inner sizes of `dims` around `axis`.
fn split(dims: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = dims[..axis].iter().product();
    let inner = dims[axis + 1..].iter().product();
    (outer, dims[axis], inner)
}

/// The position along `axis` of each lane's largest (or smallest) element: the first one, or
/// the last with `select_last`.
fn best_positions(x: &Tensor, axis: usize, max: bool, select_last: bool) -> Vec<usize> {
    let (outer, n, inner) = split(&x.dims, axis);
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| x.data[(o * n + k) * inner + i];
            let mut best = 0;
            for k in 1..n {
                let (v, b) = (at(k), at(best));
                let better = if max { v > b } else { v < b };
                if better || (select_last && v == b) {
                    best = k;
                }
            }
            out.push(best);
        }
    }
    out
}

/// ArgMax / ArgMin along `axis`; the result's dims are `out` (with or without the kept axis).
pub fn arg_reduce(
    x: &Tensor,
    axis: usize,
    max: bool,
    select_last: bool,
    out: &[usize],
) -> Result<Tensor, String> {
    if axis >= x.dims.len() || x.dims[axis] == 0 {
        return Err(format!("ArgReduce along axis {axis} of {:?}", x.dims));
    }
    let data: Vec<f64> = best_positions(x, axis, max, select_last)
        .into_iter()
        .map(|k| k as f64)
        .collect();
    Tensor::new(out.to_vec(), data).ok_or_else(|| "ArgReduce result does not match its shape".to_string())
}

/// One-hot of the first largest element along `axis`.
pub fn hardmax(x: &Tensor, axis: usize) -> Result<Tensor, String> {
    if axis >= x.dims.len() || x.dims[axis] == 0 {
        return Err(format!("Hardmax along axis {axis} of {:?}", x.dims));
    }
    let (_, n, inner) = split(&x.dims, axis);
    let mut data = vec![0.0; x.data.len()];
    for (lane, k) in best_positions(x, axis, true, false).into_iter().enumerate() {
        let (o, i) = (lane / inner.max(1), lane % inner.max(1));
        data[(o * n + k) * inner + i] = 1.0;
    }
    Ok(Tensor {
        dims: x.dims.clone(),
        data,
    })
}

/// GatherElements: `out[idx] = x[idx with idx[axis] = indices[idx]]` (negative indices count from
/// the end).
pub fn gather_elements(x: &Tensor, indices: &Tensor, axis: usize) -> Result<Tensor, String> {
    let rank = x.dims.len();
    if indices.dims.len() != rank || axis >= rank {
        return Err(format!("GatherElements of {:?} by {:?}", x.dims, indices.dims));
    }
    let xs = Tensor::strides(&x.dims);
    let n = x.dims[axis] as i64;
    let mut data = Vec::with_capacity(indices.data.len());
    for (f, &raw) in indices.data.iter().enumerate() {
        let mut idx = Tensor::unravel(f, &indices.dims);
        let k = raw as i64;
        let k = if k < 0 { k + n } else { k };
        if !(0..n).contains(&k) {
            return Err(format!("index {raw} out of range for a dim of {n}"));
        }
        idx[axis] = k as usize;
        if idx.iter().zip(&x.dims).any(|(&i, &d)| i >= d) {
            return Err(format!("GatherElements index {idx:?} outside {:?}", x.dims));
        }
        data.push(x.data[idx.iter().zip(&xs).map(|(&i, &s)| i * s).sum::<usize>()]);
    }
    Ok(Tensor {
        dims: indices.dims.clone(),
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections_along_an_axis() {
        let x = Tensor::new(vec![2, 3], vec![1.0, 5.0, 5.0, 7.0, 2.0, 7.0]).unwrap();
        assert_eq!(arg_reduce(&x, 1, true, false, &[2]).unwrap().data, [1.0, 0.0]);
        assert_eq!(arg_reduce(&x, 1, true, true, &[2, 1]).unwrap().data, [2.0, 2.0]);
        assert_eq!(
            arg_reduce(&x, 0, false, false, &[3]).unwrap().data,
            [0.0, 1.0, 0.0]
        );
        assert_eq!(hardmax(&x, 1).unwrap().data, [0., 1., 0., 1., 0., 0.]);
        let idx = Tensor::new(vec![2, 2], vec![2.0, 0.0, -1.0, 1.0]).unwrap();
        assert_eq!(gather_elements(&x, &idx, 1).unwrap().data, [5.0, 1.0, 7.0, 2.0]);
    }
}
