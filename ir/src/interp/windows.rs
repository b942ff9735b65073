//! Reference kernels of the sliding-window ops (convolution, pooling) and inference batch
//! normalisation, from the ONNX definitions: NC followed by any number of spatial dims.

use super::tensor::Tensor;
use crate::{PadMode, PoolKind, Window};

/// For output position `o` of spatial dim `a` and kernel tap `k`: the input position, or `None`
/// in the padding.
fn source(w: &Window, a: usize, o: usize, k: usize, input: usize) -> Option<usize> {
    let stride = w.strides.get(a).copied().unwrap_or(1) as usize;
    let dilation = w.dilations.get(a).copied().unwrap_or(1) as usize;
    let pad = w.pads.get(a).copied().unwrap_or(0) as usize;
    (o * stride + k * dilation)
        .checked_sub(pad)
        .filter(|&i| i < input)
}

/// Every multi-index of `dims`, row-major.
fn positions(dims: &[usize]) -> impl Iterator<Item = Vec<usize>> + '_ {
    (0..dims.iter().product::<usize>()).map(move |f| Tensor::unravel(f, dims))
}

/// Convolution: x [N, C, *S], w [M, C/group, *K], optional bias [M]; result `out`.
pub fn conv(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    win: &Window,
    group: u64,
    out: &[usize],
) -> Result<Tensor, String> {
    let (n, c) = (x.dims[0], x.dims[1]);
    let m = w.dims[0];
    let group = group.max(1) as usize;
    let (cg, mg) = (c / group, m / group);
    if w.dims[1] != cg || out.len() != x.dims.len() || !m.is_multiple_of(group) {
        return Err(format!(
            "Conv of {:?} with weights {:?} in {group} groups",
            x.dims, w.dims
        ));
    }
    let spatial_in = &x.dims[2..];
    let kernel = &w.dims[2..];
    let spatial_out = &out[2..];
    let (xs, ws) = (Tensor::strides(&x.dims), Tensor::strides(&w.dims));
    let mut data = vec![0.0; out.iter().product()];
    let per_image: usize = spatial_out.iter().product();
    let taps: Vec<Vec<usize>> = positions(kernel).collect();
    for b in 0..n {
        for oc in 0..m {
            let g = oc / mg;
            let base = bias.map_or(0.0, |t| t.data[oc]);
            for (p, o) in positions(spatial_out).enumerate() {
                let mut acc = base;
                for ic in 0..cg {
                    let channel = g * cg + ic;
                    'tap: for k in &taps {
                        let mut xi = b * xs[0] + channel * xs[1];
                        for a in 0..o.len() {
                            match source(win, a, o[a], k[a], spatial_in[a]) {
                                Some(i) => xi += i * xs[2 + a],
                                None => continue 'tap,
                            }
                        }
                        let wi = oc * ws[0]
                            + ic * ws[1]
                            + k.iter().enumerate().map(|(a, &t)| t * ws[2 + a]).sum::<usize>();
                        acc += x.data[xi] * w.data[wi];
                    }
                }
                data[(b * m + oc) * per_image + p] = acc;
            }
        }
    }
    Ok(Tensor {
        dims: out.to_vec(),
        data,
    })
}

/// Max or average pooling of x [N, C, *S] to `out`.
pub fn pool(x: &Tensor, kind: PoolKind, win: &Window, out: &[usize]) -> Result<Tensor, String> {
    if out.len() != x.dims.len() || win.kernel.len() + 2 != out.len() {
        return Err(format!(
            "pooling {:?} to {out:?} with kernel {:?}",
            x.dims, win.kernel
        ));
    }
    let kernel: Vec<usize> = win.kernel.iter().map(|&k| k as usize).collect();
    let taps: Vec<Vec<usize>> = positions(&kernel).collect();
    let xs = Tensor::strides(&x.dims);
    let spatial_in = &x.dims[2..];
    let mut data = Vec::with_capacity(out.iter().product());
    for (b, c) in (0..out[0]).flat_map(|b| (0..out[1]).map(move |c| (b, c))) {
        for o in positions(&out[2..]) {
            let (mut best, mut sum, mut inside) = (f64::NEG_INFINITY, 0.0, 0usize);
            // Taps inside the padded input (for count_include_pad), which excludes the part a
            // ceil-mode window runs past the padding.
            let mut padded = 0usize;
            'tap: for k in &taps {
                let mut xi = b * xs[0] + c * xs[1];
                let mut in_pad = true;
                let mut in_input = true;
                for a in 0..o.len() {
                    let stride = win.strides.get(a).copied().unwrap_or(1) as usize;
                    let dilation = win.dilations.get(a).copied().unwrap_or(1) as usize;
                    let begin = win.pads.get(a).copied().unwrap_or(0) as usize;
                    let end = win.pads.get(a + o.len()).copied().unwrap_or(0) as usize;
                    let pos = o[a] * stride + k[a] * dilation;
                    if pos >= spatial_in[a] + begin + end {
                        in_pad = false;
                    }
                    match source(win, a, o[a], k[a], spatial_in[a]) {
                        Some(i) => xi += i * xs[2 + a],
                        None => in_input = false,
                    }
                }
                if in_pad {
                    padded += 1;
                }
                if !in_input {
                    continue 'tap;
                }
                let v = x.data[xi];
                best = best.max(v);
                sum += v;
                inside += 1;
            }
            data.push(match kind {
                PoolKind::Max | PoolKind::MaxWithIndices { .. } => best,
                PoolKind::Average { count_include_pad } => {
                    let n = if count_include_pad { padded } else { inside };
                    sum / n.max(1) as f64
                }
            });
        }
    }
    Ok(Tensor {
        dims: out.to_vec(),
        data,
    })
}

/// Inference batch normalisation over dim 1: inputs x, scale, bias, mean, var.
pub fn batch_norm(inputs: &[&Tensor], epsilon: f64) -> Result<Tensor, String> {
    let [x, scale, bias, mean, var] = inputs else {
        return Err(format!("BatchNorm takes 5 inputs, given {}", inputs.len()));
    };
    let c = x.dims.get(1).copied().unwrap_or(1);
    let inner: usize = x.dims.iter().skip(2).product();
    let data = x
        .data
        .iter()
        .enumerate()
        .map(|(f, &v)| {
            let ch = (f / inner.max(1)) % c.max(1);
            (v - mean.data[ch]) / (var.data[ch] + epsilon).sqrt() * scale.data[ch] + bias.data[ch]
        })
        .collect();
    Ok(Tensor {
        dims: x.dims.clone(),
        data,
    })
}

/// Pad: `pads` holds the begin amounts of every dim, then the end amounts (negative crops).
pub fn pad(x: &Tensor, pads: &[i64], mode: PadMode, out: &[usize]) -> Result<Tensor, String> {
    let rank = x.dims.len();
    if pads.len() != 2 * rank || out.len() != rank {
        return Err(format!("Pad of {:?} by {pads:?}", x.dims));
    }
    let xs = Tensor::strides(&x.dims);
    let data = positions(out)
        .map(|o| {
            let mut flat = 0usize;
            for a in 0..rank {
                let n = x.dims[a] as i64;
                let mut i = o[a] as i64 - pads[a];
                if i < 0 || i >= n {
                    i = match mode {
                        PadMode::Constant { value } => return value,
                        _ if n == 0 => return 0.0,
                        PadMode::Edge => i.clamp(0, n - 1),
                        PadMode::Wrap => i.rem_euclid(n),
                        PadMode::Reflect => {
                            if n == 1 {
                                0
                            } else {
                                let period = 2 * (n - 1);
                                let r = i.rem_euclid(period);
                                if r < n {
                                    r
                                } else {
                                    period - r
                                }
                            }
                        }
                    };
                }
                flat += i as usize * xs[a];
            }
            x.data[flat]
        })
        .collect();
    Ok(Tensor {
        dims: out.to_vec(),
        data,
    })
}

/// Transposed convolution: each input pixel times each kernel tap, added at the output position
/// it reaches (`o = i * stride + k * dilation - pad_begin`); x [N, C, *S], w [C, M/group, *K].
pub fn conv_transpose(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    win: &Window,
    group: u64,
    out: &[usize],
) -> Result<Tensor, String> {
    let (n, c) = (x.dims[0], x.dims[1]);
    let group = group.max(1) as usize;
    let (cg, mg) = (c / group, w.dims[1]);
    let m = mg * group;
    if w.dims[0] != c || out.len() != x.dims.len() || out[1] != m {
        return Err(format!(
            "ConvTranspose of {:?} with weights {:?} to {out:?}",
            x.dims, w.dims
        ));
    }
    let spatial = &out[2..];
    let per_image: usize = spatial.iter().product();
    let mut data = vec![0.0; out.iter().product()];
    for (f, slot) in data.iter_mut().enumerate() {
        *slot = bias.map_or(0.0, |b| b.data[(f / per_image) % m]);
    }
    let (xs, ws) = (Tensor::strides(&x.dims), Tensor::strides(&w.dims));
    let taps: Vec<Vec<usize>> = positions(&w.dims[2..]).collect();
    for b in 0..n {
        for ic in 0..c {
            let g = ic / cg;
            for i in positions(&x.dims[2..]) {
                let xi =
                    b * xs[0] + ic * xs[1] + i.iter().enumerate().map(|(a, &v)| v * xs[2 + a]).sum::<usize>();
                let xv = x.data[xi];
                'tap: for k in &taps {
                    let mut o = 0usize;
                    for a in 0..i.len() {
                        let stride = win.strides.get(a).copied().unwrap_or(1) as i64;
                        let dilation = win.dilations.get(a).copied().unwrap_or(1) as i64;
                        let pad = win.pads.get(a).copied().unwrap_or(0) as i64;
                        let pos = i[a] as i64 * stride + k[a] as i64 * dilation - pad;
                        if pos < 0 || pos >= spatial[a] as i64 {
                            continue 'tap;
                        }
                        o = o * spatial[a] + pos as usize;
                    }
                    for om in 0..mg {
                        let wi = ic * ws[0]
                            + om * ws[1]
                            + k.iter().enumerate().map(|(a, &t)| t * ws[2 + a]).sum::<usize>();
                        data[(b * m + g * mg + om) * per_image + o] += xv * w.data[wi];
                    }
                }
            }
        }
    }
    Ok(Tensor {
        dims: out.to_vec(),
        data,
    })
}

/// Max pooling with the flat index of each maximum in the input (row-major over N, C and the
/// spatial dims; with `column_major` the spatial dims count column-major), the first on ties.
pub fn max_pool_with_indices(
    x: &Tensor,
    win: &Window,
    column_major: bool,
    out: &[usize],
) -> Result<(Tensor, Tensor), String> {
    let values = pool(x, PoolKind::Max, win, out)?;
    let kernel: Vec<usize> = win.kernel.iter().map(|&k| k as usize).collect();
    let taps: Vec<Vec<usize>> = positions(&kernel).collect();
    let spatial_in = &x.dims[2..];
    let mut indices = Vec::with_capacity(values.data.len());
    for (f, o) in positions(out).enumerate() {
        let (b, c) = (o[0], o[1]);
        let mut found = 0usize;
        for k in &taps {
            let mut at = Vec::with_capacity(spatial_in.len());
            for a in 0..spatial_in.len() {
                match source(win, a, o[2 + a], k[a], spatial_in[a]) {
                    Some(i) => at.push(i),
                    None => break,
                }
            }
            if at.len() != spatial_in.len() {
                continue;
            }
            let mut full = vec![b, c];
            full.extend(&at);
            let flat_index: usize = full
                .iter()
                .zip(Tensor::strides(&x.dims))
                .map(|(&i, s)| i * s)
                .sum();
            if x.data[flat_index] == values.data[f] {
                found = if column_major {
                    // N and C row-major, then the spatial dims with the first varying fastest.
                    let per_image: usize = spatial_in.iter().product();
                    let mut s = 0usize;
                    for a in (0..at.len()).rev() {
                        s = s * spatial_in[a] + at[a];
                    }
                    (b * x.dims[1] + c) * per_image + s
                } else {
                    flat_index
                };
                break;
            }
        }
        indices.push(found as f64);
    }
    Ok((
        values,
        Tensor {
            dims: out.to_vec(),
            data: indices,
        },
    ))
}

/// Instance normalisation (each sample's channel over its spatial dims) or group normalisation
/// (each sample's group of channels): x [N, C, ...], scale and bias per channel, or per group.
pub fn group_norm(
    x: &Tensor,
    scale: &Tensor,
    bias: &Tensor,
    groups: usize,
    epsilon: f64,
) -> Result<Tensor, String> {
    let (n, c) = (x.dims[0], *x.dims.get(1).ok_or("normalisation of a vector")?);
    if groups == 0 || c % groups != 0 {
        return Err(format!("{c} channels in {groups} groups"));
    }
    let inner: usize = x.dims[2..].iter().product();
    let per_group = c / groups * inner;
    let mut data = x.data.clone();
    for b in 0..n {
        for g in 0..groups {
            let start = (b * groups + g) * per_group;
            let lane = &mut data[start..start + per_group];
            let mean = lane.iter().sum::<f64>() / per_group as f64;
            let var = lane.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / per_group as f64;
            let inv = 1.0 / (var + epsilon).sqrt();
            for (f, v) in lane.iter_mut().enumerate() {
                let ch = g * (c / groups) + f / inner.max(1);
                let at = |t: &Tensor| {
                    if t.data.len() == groups && groups != c {
                        t.data[g]
                    } else {
                        t.data[ch]
                    }
                };
                *v = (*v - mean) * inv * at(scale) + at(bias);
            }
        }
    }
    Ok(Tensor {
        dims: x.dims.clone(),
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(kernel: &[u64], strides: &[u64], pads: &[u64]) -> Window {
        Window {
            kernel: kernel.to_vec(),
            strides: strides.to_vec(),
            dilations: vec![1; kernel.len()],
            pads: pads.to_vec(),
            ceil_mode: false,
        }
    }

    #[test]
    fn a_padded_convolution_sums_its_window() {
        // 1x1x3x3 input 1..9, a 2x2 kernel of ones, padding 1 on every side, stride 2.
        let x = Tensor::new(vec![1, 1, 3, 3], (1..=9).map(f64::from).collect()).unwrap();
        let w = Tensor::new(vec![1, 1, 2, 2], vec![1.0; 4]).unwrap();
        let y = conv(
            &x,
            &w,
            None,
            &window(&[2, 2], &[2, 2], &[1, 1, 1, 1]),
            1,
            &[1, 1, 2, 2],
        )
        .unwrap();
        // Windows: {1}, {2,3}, {4,7}, {5,6,8,9}.
        assert_eq!(y.data, [1.0, 5.0, 11.0, 28.0]);
    }

    #[test]
    fn padding_fills_by_its_mode() {
        let x = Tensor::new(vec![3], vec![1.0, 2.0, 3.0]).unwrap();
        let by = |mode| pad(&x, &[2, 2], mode, &[7]).unwrap().data;
        assert_eq!(by(PadMode::Constant { value: 9.0 }), [9., 9., 1., 2., 3., 9., 9.]);
        assert_eq!(by(PadMode::Edge), [1., 1., 1., 2., 3., 3., 3.]);
        assert_eq!(by(PadMode::Reflect), [3., 2., 1., 2., 3., 2., 1.]);
        assert_eq!(by(PadMode::Wrap), [2., 3., 1., 2., 3., 1., 2.]);
        // A negative pad crops.
        assert_eq!(pad(&x, &[-1, 0], PadMode::Edge, &[2]).unwrap().data, [2., 3.]);
    }

    #[test]
    fn transposed_convolution_and_group_norms() {
        // 1x1x2 input [1, 2], kernel [1, 1, 1], stride 2: each input lands on its own pair.
        let x = Tensor::new(vec![1, 1, 2], vec![1.0, 2.0]).unwrap();
        let w = Tensor::new(vec![1, 1, 2], vec![1.0, 10.0]).unwrap();
        let y = conv_transpose(&x, &w, None, &window(&[2], &[2], &[0, 0]), 1, &[1, 1, 4]).unwrap();
        assert_eq!(y.data, [1.0, 10.0, 2.0, 20.0]);
        let x = Tensor::new(vec![1, 2, 2], vec![1.0, 3.0, 10.0, 30.0]).unwrap();
        let ones = Tensor::new(vec![2], vec![1.0, 1.0]).unwrap();
        let zeros = Tensor::new(vec![2], vec![0.0, 0.0]).unwrap();
        let y = group_norm(&x, &ones, &zeros, 2, 0.0).unwrap();
        assert_eq!(y.data, [-1.0, 1.0, -1.0, 1.0]);
        let (v, i) = max_pool_with_indices(
            &Tensor::new(vec![1, 1, 2, 2], vec![1.0, 4.0, 3.0, 2.0]).unwrap(),
            &window(&[2, 2], &[1, 1], &[0, 0, 0, 0]),
            false,
            &[1, 1, 1, 1],
        )
        .unwrap();
        assert_eq!((v.data[0], i.data[0]), (4.0, 1.0));
    }

    #[test]
    fn pooling_takes_the_max_or_the_mean_of_what_is_inside() {
        let x = Tensor::new(vec![1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let w = window(&[2, 2], &[1, 1], &[1, 1, 0, 0]);
        let max = pool(&x, PoolKind::Max, &w, &[1, 1, 2, 2]).unwrap();
        assert_eq!(max.data, [1.0, 2.0, 3.0, 4.0]);
        let mean = pool(
            &x,
            PoolKind::Average {
                count_include_pad: false,
            },
            &w,
            &[1, 1, 2, 2],
        )
        .unwrap();
        assert_eq!(mean.data, [1.0, 1.5, 2.0, 2.5]);
        let padded = pool(
            &x,
            PoolKind::Average {
                count_include_pad: true,
            },
            &w,
            &[1, 1, 2, 2],
        )
        .unwrap();
        assert_eq!(padded.data, [0.25, 0.75, 1.0, 2.5]);
    }
}
