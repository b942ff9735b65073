//! Reference kernels that read or write by index: TopK, OneHot, GatherND, ScatterND and
//! ScatterElements, from the ONNX definitions.

use super::tensor::Tensor;
use crate::ReduceOp;

fn flat(idx: &[usize], dims: &[usize]) -> usize {
    idx.iter().zip(Tensor::strides(dims)).map(|(&i, s)| i * s).sum()
}

/// An index that may count from the end, checked against `n`.
fn index(raw: f64, n: usize) -> Result<usize, String> {
    let k = raw as i64;
    let k = if k < 0 { k + n as i64 } else { k };
    usize::try_from(k)
        .ok()
        .filter(|&k| k < n)
        .ok_or_else(|| format!("index {raw} out of range for a dim of {n}"))
}

/// The `k` largest (or smallest) elements along `axis`, sorted, and their indices; equal elements
/// keep their order (the lower index first).
pub fn top_k(x: &Tensor, axis: usize, k: usize, largest: bool) -> Result<(Tensor, Tensor), String> {
    let n = *x.dims.get(axis).ok_or("TopK's axis is out of range")?;
    if k > n {
        return Err(format!("TopK of {k} along a dim of {n}"));
    }
    let outer: usize = x.dims[..axis].iter().product();
    let inner: usize = x.dims[axis + 1..].iter().product();
    let mut dims = x.dims.clone();
    dims[axis] = k;
    let mut values = vec![0.0; outer * k * inner];
    let mut indices = vec![0.0; outer * k * inner];
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| x.data[(o * n + j) * inner + i];
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| {
                let (va, vb) = (at(a), at(b));
                let by_value = if largest {
                    vb.total_cmp(&va)
                } else {
                    va.total_cmp(&vb)
                };
                by_value.then(a.cmp(&b))
            });
            for (r, &j) in order.iter().take(k).enumerate() {
                values[(o * k + r) * inner + i] = at(j);
                indices[(o * k + r) * inner + i] = j as f64;
            }
        }
    }
    Ok((
        Tensor {
            dims: dims.clone(),
            data: values,
        },
        Tensor { dims, data: indices },
    ))
}

/// One-hot of `indices` with `depth` classes along the new axis `axis`; `values` is [off, on].
/// An index outside `[-depth, depth)` gives all off.
pub fn one_hot(
    indices: &Tensor,
    values: &Tensor,
    axis: usize,
    depth: usize,
    out: &[usize],
) -> Result<Tensor, String> {
    let [off, on] = values.data[..] else {
        return Err("OneHot's values must be [off, on]".into());
    };
    let data = (0..out.iter().product::<usize>())
        .map(|f| {
            let mut idx = Tensor::unravel(f, out);
            let class = idx.remove(axis);
            let raw = indices.data[flat(&idx, &indices.dims)] as i64;
            let raw = if raw < 0 { raw + depth as i64 } else { raw };
            if raw == class as i64 {
                on
            } else {
                off
            }
        })
        .collect();
    Ok(Tensor {
        dims: out.to_vec(),
        data,
    })
}

/// GatherND: for each index tuple (the last axis of `indices`, after `batch_dims` shared leading
/// axes), the slice of `data` it names.
pub fn gather_nd(
    data: &Tensor,
    indices: &Tensor,
    batch_dims: usize,
    out: &[usize],
) -> Result<Tensor, String> {
    let m = *indices.dims.last().ok_or("GatherND's indices are a scalar")?;
    if batch_dims + m > data.dims.len() {
        return Err(format!("GatherND of {:?} by {:?}", data.dims, indices.dims));
    }
    let slice: usize = data.dims[batch_dims + m..].iter().product();
    let tuples = &indices.dims[..indices.dims.len() - 1];
    let mut result = Vec::with_capacity(out.iter().product());
    for p in 0..tuples.iter().product::<usize>() {
        let at = Tensor::unravel(p, tuples);
        let mut start = at[..batch_dims].to_vec();
        for j in 0..m {
            let raw = indices.data[p * m + j];
            start.push(index(raw, data.dims[batch_dims + j])?);
        }
        start.resize(data.dims.len(), 0);
        let base = flat(&start, &data.dims);
        result.extend_from_slice(&data.data[base..base + slice]);
    }
    Tensor::new(out.to_vec(), result).ok_or_else(|| "GatherND result does not match its shape".into())
}

fn combine(reduction: Option<ReduceOp>, old: f64, new: f64) -> Result<f64, String> {
    Ok(match reduction {
        None => new,
        Some(ReduceOp::Sum) => old + new,
        Some(ReduceOp::Prod) => old * new,
        Some(ReduceOp::Max) => old.max(new),
        Some(ReduceOp::Min) => old.min(new),
        Some(other) => return Err(format!("scatter reduction {other:?}")),
    })
}

/// ScatterND: `data` with each slice an index tuple of `indices` names combined with `updates`.
pub fn scatter_nd(
    data: &Tensor,
    indices: &Tensor,
    updates: &Tensor,
    reduction: Option<ReduceOp>,
) -> Result<Tensor, String> {
    let m = *indices.dims.last().ok_or("ScatterND's indices are a scalar")?;
    if m > data.dims.len() {
        return Err(format!("ScatterND of {:?} by {:?}", data.dims, indices.dims));
    }
    let slice: usize = data.dims[m..].iter().product();
    let tuples: usize = indices.dims[..indices.dims.len() - 1].iter().product();
    if updates.data.len() != tuples * slice {
        return Err(format!("ScatterND updates {:?} do not fit", updates.dims));
    }
    let mut out = data.clone();
    for p in 0..tuples {
        let mut start = Vec::with_capacity(data.dims.len());
        for j in 0..m {
            start.push(index(indices.data[p * m + j], data.dims[j])?);
        }
        start.resize(data.dims.len(), 0);
        let base = flat(&start, &data.dims);
        for s in 0..slice {
            let slot = &mut out.data[base + s];
            *slot = combine(reduction, *slot, updates.data[p * slice + s])?;
        }
    }
    Ok(out)
}

/// ScatterElements: `data` with `updates[idx]` combined into the element `idx` names once its
/// `axis` coordinate is replaced by `indices[idx]`.
pub fn scatter_elements(
    data: &Tensor,
    indices: &Tensor,
    updates: &Tensor,
    axis: usize,
    reduction: Option<ReduceOp>,
) -> Result<Tensor, String> {
    if indices.dims != updates.dims || indices.dims.len() != data.dims.len() || axis >= data.dims.len() {
        return Err(format!(
            "ScatterElements of {:?} by {:?}",
            data.dims, indices.dims
        ));
    }
    let mut out = data.clone();
    for (f, &raw) in indices.data.iter().enumerate() {
        let mut idx = Tensor::unravel(f, &indices.dims);
        idx[axis] = index(raw, data.dims[axis])?;
        if idx.iter().zip(&data.dims).any(|(&i, &d)| i >= d) {
            return Err(format!("ScatterElements index {idx:?} outside {:?}", data.dims));
        }
        let slot = &mut out.data[flat(&idx, &data.dims)];
        *slot = combine(reduction, *slot, updates.data[f])?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(dims: &[usize], data: &[f64]) -> Tensor {
        Tensor::new(dims.to_vec(), data.to_vec()).unwrap()
    }

    #[test]
    fn top_k_keeps_the_first_of_equals() {
        let (v, i) = top_k(&t(&[1, 4], &[3., 9., 3., 1.]), 1, 3, true).unwrap();
        assert_eq!((v.data, i.data), (vec![9., 3., 3.], vec![1., 0., 2.]));
        let (v, _) = top_k(&t(&[4], &[3., 9., 3., 1.]), 0, 2, false).unwrap();
        assert_eq!(v.data, [1., 3.]);
    }

    #[test]
    fn one_hot_and_gathers_and_scatters() {
        let oh = one_hot(&t(&[2], &[1., -1.]), &t(&[2], &[0., 5.]), 1, 3, &[2, 3]).unwrap();
        assert_eq!(oh.data, [0., 5., 0., 0., 0., 5.]);
        let data = t(&[2, 2], &[1., 2., 3., 4.]);
        assert_eq!(
            gather_nd(&data, &t(&[2, 1], &[1., 0.]), 0, &[2, 2]).unwrap().data,
            [3., 4., 1., 2.]
        );
        assert_eq!(
            gather_nd(&data, &t(&[2, 1], &[1., 0.]), 1, &[2]).unwrap().data,
            [2., 3.]
        );
        let s = scatter_nd(
            &data,
            &t(&[1, 2], &[0., 1.]),
            &t(&[1], &[9.]),
            Some(ReduceOp::Sum),
        )
        .unwrap();
        assert_eq!(s.data, [1., 11., 3., 4.]);
        let e = scatter_elements(&data, &t(&[1, 2], &[1., 0.]), &t(&[1, 2], &[7., 8.]), 0, None).unwrap();
        assert_eq!(e.data, [1., 8., 7., 4.]);
    }
}
