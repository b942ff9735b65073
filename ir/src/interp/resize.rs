//! The reference kernel of Resize (nearest, linear and cubic sampling, separable over the axes),
//! after ONNX's reference implementation, with each axis's scale as the model gave it (output
//! over input size when it is not recorded). Antialiasing and `tf_crop_and_resize` have no
//! kernel yet.

use super::tensor::Tensor;
use crate::{ResizeMode, ResizeSampling};

/// The input coordinate output coordinate `x` maps to along an axis of `input` -> `output`
/// sampled at `scale`.
fn source(s: &ResizeSampling, x: usize, input: usize, output: usize, scale: f64) -> Option<f64> {
    // The reference measures the output as the input times the scale, not rounded.
    let (x, i, sized) = (x as f64, input as f64, output as f64);
    let o = i * scale;
    Some(match s.coordinates.as_str() {
        "half_pixel" => (x + 0.5) / scale - 0.5,
        "half_pixel_symmetric" => {
            let adjustment = sized / o;
            let offset = i / 2.0 * (1.0 - adjustment);
            offset + (x + 0.5) / scale - 0.5
        }
        // The reference takes -0.5 for an output of one (measured unrounded).
        "pytorch_half_pixel" if o == 1.0 => -0.5,
        "pytorch_half_pixel" => (x + 0.5) / scale - 0.5,
        "align_corners" if o > 1.0 => x * (i - 1.0) / (o - 1.0),
        "align_corners" => 0.0,
        "asymmetric" => x / scale,
        _ => return None,
    })
}

fn nearest(s: &ResizeSampling, x: f64) -> Option<f64> {
    Some(match s.nearest.as_str() {
        "round_prefer_floor" if x.fract() == 0.5 => x.floor(),
        "round_prefer_ceil" if x.fract() == 0.5 => x.ceil(),
        "round_prefer_floor" | "round_prefer_ceil" => x.round(),
        "floor" => x.floor(),
        "ceil" => x.ceil(),
        _ => return None,
    })
}

/// The (input index, weight) pairs output coordinate `x` samples along one axis.
fn taps(s: &ResizeSampling, x: usize, input: usize, output: usize, scale: f64) -> Option<Vec<(usize, f64)>> {
    if input == output && scale == 1.0 && s.mode != ResizeMode::Nearest {
        return Some(vec![(x, 1.0)]);
    }
    let at = source(s, x, input, output, scale)?;
    let clamp = |i: i64| i.clamp(0, input as i64 - 1) as usize;
    if s.mode == ResizeMode::Nearest {
        return Some(vec![(clamp(nearest(s, at)? as i64), 1.0)]);
    }
    // The left neighbour and the ratio past it, in (0, 1] (an exact coordinate takes the pixel on
    // its left with ratio 1, as the reference does).
    let (left, ratio) = if at.fract() == 0.0 {
        (at as i64 - 1, 1.0)
    } else {
        (at.floor() as i64, at - at.floor())
    };
    let (first, coeffs) = match s.mode {
        ResizeMode::Linear => (left, vec![1.0 - ratio, ratio]),
        _ => {
            let a = f64::from(s.cubic_coeff_a);
            let far = |t: f64| ((a * t - 5.0 * a) * t + 8.0 * a) * t - 4.0 * a;
            let near = |t: f64| ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0;
            (
                left - 1,
                vec![far(ratio + 1.0), near(ratio), near(1.0 - ratio), far(2.0 - ratio)],
            )
        }
    };
    let mut pairs: Vec<(i64, f64)> = coeffs
        .into_iter()
        .enumerate()
        .map(|(k, c)| (first + k as i64, c))
        .collect();
    if s.exclude_outside {
        pairs.retain(|&(i, _)| (0..input as i64).contains(&i));
        let total: f64 = pairs.iter().map(|p| p.1).sum();
        pairs.iter_mut().for_each(|p| p.1 /= total);
    }
    Some(pairs.into_iter().map(|(i, c)| (clamp(i), c)).collect())
}

/// Resize `x` to `out`; `None` where no kernel models the sampling.
pub fn resize(x: &Tensor, s: &ResizeSampling, out: &[usize]) -> Option<Tensor> {
    if s.antialias || out.len() != x.dims.len() || x.dims.contains(&0) {
        return None;
    }
    let per_axis: Vec<Vec<Vec<(usize, f64)>>> = (0..out.len())
        .map(|a| {
            let scale = match s.scales.get(a) {
                Some(&sc) if s.scales.len() == out.len() => sc,
                _ => out[a] as f64 / x.dims[a] as f64,
            };
            (0..out[a])
                .map(|o| taps(s, o, x.dims[a], out[a], scale))
                .collect::<Option<_>>()
        })
        .collect::<Option<_>>()?;
    let strides = Tensor::strides(&x.dims);
    let data = (0..out.iter().product::<usize>())
        .map(|f| {
            let o = Tensor::unravel(f, out);
            // The tensor product of each axis's taps.
            let mut acc = vec![(0usize, 1.0f64)];
            for (a, &p) in o.iter().enumerate() {
                let stride = strides[a];
                acc = acc
                    .iter()
                    .flat_map(|&(base, w)| {
                        per_axis[a][p]
                            .iter()
                            .map(move |&(i, c)| (base + i * stride, w * c))
                    })
                    .collect();
            }
            acc.iter().map(|&(i, w)| x.data[i] * w).sum()
        })
        .collect();
    Some(Tensor {
        dims: out.to_vec(),
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampling(mode: ResizeMode, coordinates: &str) -> ResizeSampling {
        ResizeSampling {
            mode,
            coordinates: coordinates.into(),
            nearest: "round_prefer_floor".into(),
            cubic_coeff_a: -0.75,
            exclude_outside: false,
            antialias: false,
            scales: vec![],
        }
    }

    #[test]
    fn upsampling_by_two() {
        let x = Tensor::new(vec![1, 2], vec![1.0, 3.0]).unwrap();
        let lin = resize(&x, &sampling(ResizeMode::Linear, "half_pixel"), &[1, 4]).unwrap();
        assert_eq!(lin.data, [1.0, 1.5, 2.5, 3.0]);
        let near = resize(&x, &sampling(ResizeMode::Nearest, "asymmetric"), &[1, 4]).unwrap();
        assert_eq!(near.data, [1.0, 1.0, 3.0, 3.0]);
        let corners = resize(&x, &sampling(ResizeMode::Linear, "align_corners"), &[1, 3]).unwrap();
        assert_eq!(corners.data, [1.0, 2.0, 3.0]);
    }
}
