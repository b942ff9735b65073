//! A dense row-major tensor of `f64` values, with the index arithmetic the kernels share.

/// Dims and values, row-major (the last dim varies fastest).
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub dims: Vec<usize>,
    pub data: Vec<f64>,
}

impl Tensor {
    /// A tensor of `dims` holding `data`; `None` when the element counts differ.
    pub fn new(dims: Vec<usize>, data: Vec<f64>) -> Option<Tensor> {
        (dims.iter().product::<usize>() == data.len()).then_some(Tensor { dims, data })
    }

    /// A scalar.
    pub fn scalar(x: f64) -> Tensor {
        Tensor {
            dims: vec![],
            data: vec![x],
        }
    }

    /// Row-major strides of `dims`.
    pub fn strides(dims: &[usize]) -> Vec<usize> {
        let mut s = vec![1; dims.len()];
        for k in (0..dims.len().saturating_sub(1)).rev() {
            s[k] = s[k + 1] * dims[k + 1];
        }
        s
    }

    /// The multi-index of flat position `flat` in `dims`.
    pub fn unravel(mut flat: usize, dims: &[usize]) -> Vec<usize> {
        let mut idx = vec![0; dims.len()];
        for k in (0..dims.len()).rev() {
            if dims[k] > 0 {
                idx[k] = flat % dims[k];
                flat /= dims[k];
            }
        }
        idx
    }

    /// The value at `idx` of this tensor read with numpy broadcasting into an index of rank
    /// `idx.len()` (this tensor's dims aligned to the right; size-1 dims repeat).
    pub fn at_broadcast(&self, idx: &[usize]) -> f64 {
        let offset = idx.len() - self.dims.len();
        let strides = Self::strides(&self.dims);
        let mut flat = 0;
        for (k, &d) in self.dims.iter().enumerate() {
            let i = if d == 1 { 0 } else { idx[offset + k] };
            flat += i * strides[k];
        }
        self.data[flat]
    }
}
