//! Operations of the IR. Each kind names the computation and carries every parameter resolved to a
//! static value (axes normalised, shapes folded), so shape inference needs nothing but the operand
//! types; operands are values in the graph.

use crate::{DType, ValueId};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Elementwise binary operations with numpy-style broadcasting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Min,
    Max,
    /// Remainder; `fmod` selects C `fmod` semantics (sign of the dividend) over Python's.
    Mod {
        fmod: bool,
    },
    And,
    Or,
    Xor,
    Equal,
    Less,
    Greater,
    LessOrEqual,
    GreaterOrEqual,
    /// `x < 0 ? slope * x : x`, the slope broadcast to x.
    PRelu,
}

impl BinaryOp {
    /// Comparisons produce bool from numeric operands.
    pub fn is_comparison(self) -> bool {
        use BinaryOp::*;
        matches!(self, Equal | Less | Greater | LessOrEqual | GreaterOrEqual)
    }

    /// Logical ops take and produce bool.
    pub fn is_logical(self) -> bool {
        matches!(self, BinaryOp::And | BinaryOp::Or | BinaryOp::Xor)
    }

    pub fn name(self) -> &'static str {
        use BinaryOp::*;
        match self {
            Add => "Add",
            Sub => "Sub",
            Mul => "Mul",
            Div => "Div",
            Pow => "Pow",
            Min => "Min",
            Max => "Max",
            Mod { .. } => "Mod",
            And => "And",
            Or => "Or",
            Xor => "Xor",
            Equal => "Equal",
            Less => "Less",
            Greater => "Greater",
            LessOrEqual => "LessOrEqual",
            GreaterOrEqual => "GreaterOrEqual",
            PRelu => "PRelu",
        }
    }
}

/// Elementwise unary operations; parameters are the ONNX attributes, resolved.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum UnaryOp {
    Relu,
    /// GELU; `tanh` selects the tanh approximation.
    Gelu {
        tanh: bool,
    },
    Erf,
    Tanh,
    Sigmoid,
    Sqrt,
    Reciprocal,
    Neg,
    Abs,
    Exp,
    Log,
    Sin,
    Cos,
    Floor,
    Ceil,
    Round,
    Sign,
    Softplus,
    HardSwish,
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    LeakyRelu {
        alpha: f32,
    },
    Elu {
        alpha: f32,
    },
    /// Clamp to `[min, max]` (infinite bounds where the model gives none).
    Clip {
        #[serde(with = "crate::serde_float")]
        min: f64,
        #[serde(with = "crate::serde_float")]
        max: f64,
    },
    /// Logical not (bool to bool).
    Not,
    /// Bool result: whether the element is NaN.
    IsNaN,
    /// Bool result: whether the element is an infinity of a selected sign.
    IsInf {
        negative: bool,
        positive: bool,
    },
    Tan,
    Selu {
        alpha: f32,
        gamma: f32,
    },
    ThresholdedRelu {
        alpha: f32,
    },
    Acos,
    Asin,
    Atan,
    Acosh,
    Asinh,
    Atanh,
    Sinh,
    Cosh,
    Softsign,
    Mish,
    Celu {
        alpha: f32,
    },
    /// `x < -lambd ? x + bias : x > lambd ? x - bias : 0`.
    Shrink {
        bias: f32,
        lambd: f32,
    },
}

impl UnaryOp {
    pub fn name(self) -> &'static str {
        use UnaryOp::*;
        match self {
            Relu => "Relu",
            Gelu { .. } => "Gelu",
            Erf => "Erf",
            Tanh => "Tanh",
            Sigmoid => "Sigmoid",
            Sqrt => "Sqrt",
            Reciprocal => "Reciprocal",
            Neg => "Neg",
            Abs => "Abs",
            Exp => "Exp",
            Log => "Log",
            Sin => "Sin",
            Cos => "Cos",
            Floor => "Floor",
            Ceil => "Ceil",
            Round => "Round",
            Sign => "Sign",
            Softplus => "Softplus",
            HardSwish => "HardSwish",
            HardSigmoid { .. } => "HardSigmoid",
            LeakyRelu { .. } => "LeakyRelu",
            Elu { .. } => "Elu",
            Clip { .. } => "Clip",
            Not => "Not",
            IsNaN => "IsNaN",
            IsInf { .. } => "IsInf",
            Tan => "Tan",
            Selu { .. } => "Selu",
            ThresholdedRelu { .. } => "ThresholdedRelu",
            Acos => "Acos",
            Asin => "Asin",
            Atan => "Atan",
            Acosh => "Acosh",
            Asinh => "Asinh",
            Atanh => "Atanh",
            Sinh => "Sinh",
            Cosh => "Cosh",
            Softsign => "Softsign",
            Mish => "Mish",
            Celu { .. } => "Celu",
            Shrink { .. } => "Shrink",
        }
    }

    /// Ops defined on every numeric dtype (the rest need floats, except the bool ones).
    pub fn accepts_integers(self) -> bool {
        use UnaryOp::*;
        matches!(
            self,
            Relu | Neg | Abs | Sign | Clip { .. } | LeakyRelu { .. } | Shrink { .. }
        )
    }
}

/// Reductions over a set of axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ReduceOp {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
    L1,
    L2,
    SumSquare,
    LogSum,
    LogSumExp,
}

/// Sliding-window reductions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PoolKind {
    Max,
    /// Max with a second, int64 result: the flat index of each maximum (`column_major` selects
    /// the storage order the indices count in).
    MaxWithIndices {
        column_major: bool,
    },
    Average {
        count_include_pad: bool,
    },
}

/// The geometry of a convolution or pooling window over the spatial dims (dims 2.. of NCHW).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub kernel: Vec<u64>,
    pub strides: Vec<u64>,
    pub dilations: Vec<u64>,
    /// Begin pads for every spatial dim, then end pads.
    pub pads: Vec<u64>,
    /// Output size rounds up (pooling's `ceil_mode`).
    pub ceil_mode: bool,
}

/// How Pad fills the new border.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum PadMode {
    Constant {
        #[serde(with = "crate::serde_float")]
        value: f64,
    },
    Reflect,
    Edge,
    Wrap,
}

/// Resize interpolation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResizeMode {
    Nearest,
    Linear,
    Cubic,
}

/// How Resize maps output coordinates to input ones and samples them: the ONNX attributes that
/// do not change the shape but do change the numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResizeSampling {
    pub mode: ResizeMode,
    /// `coordinate_transformation_mode` (half_pixel, asymmetric, align_corners, ...).
    pub coordinates: String,
    /// `nearest_mode` (round_prefer_floor, floor, ...), for nearest sampling.
    pub nearest: String,
    pub cubic_coeff_a: f32,
    pub exclude_outside: bool,
    pub antialias: bool,
    /// The scale of each input axis the coordinates are mapped with: the model's `scales`, or
    /// output over input size when it gave `sizes` (the output size is the scale's product
    /// rounded down, so it does not give the scale back).
    pub scales: Vec<f64>,
}

/// What an operation computes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum OpKind {
    /// Batched matrix product with numpy broadcasting of the leading dims.
    MatMul,
    /// Integer matmul: int8/uint8 operands (optional zero points as inputs 2 and 3), int32 result.
    MatMulInteger,
    /// `alpha * op(A) @ op(B) + beta * C` on 2-D operands; C optional and broadcast.
    Gemm {
        trans_a: bool,
        trans_b: bool,
        alpha: f32,
        beta: f32,
    },
    /// `act(MatMul(a, b) + bias)`, the bias a vector along the result's last axis and `act` an
    /// optional elementwise activation: the product, its bias and its activation run back to back
    /// (the vector unit adds and activates as the matrix unit's results stream out), made by the
    /// `matmul-bias` and `matmul-bias-<act>` rewrites.
    MatMulBias {
        act: Option<UnaryOp>,
    },
    /// `MatMul(a, transpose(b))` with `b`'s last two axes swapped: `a` `[.., m, k]` times `b`
    /// `[.., n, k]`, the matrix unit reading `b` row by row as its columns instead of a transpose
    /// pass first (the `transpose-into-matmul` rewrite, `passes::fold_transposed_operand`).
    MatMulT,
    /// Convolution over NC(spatial) with weights M x C/group x kernel; optional bias.
    Conv {
        window: Window,
        group: u64,
    },
    /// Transposed convolution; weights C x M/group x kernel; optional bias.
    ConvTranspose {
        window: Window,
        group: u64,
        output_padding: Vec<u64>,
    },
    /// Einstein summation over explicit index letters (no ellipsis left after lowering).
    Einsum {
        equation: String,
    },
    Binary(BinaryOp),
    Unary(UnaryOp),
    /// `cond ? x : y` with broadcasting.
    Where,
    Cast {
        to: DType,
    },
    /// Softmax (or log-softmax) along `axis`, of the input plus an optional additive mask
    /// broadcast to it (the `softmax-mask` rewrite's masked softmax: the mask is added in the
    /// softmax's first pass instead of a pass of its own).
    Softmax {
        axis: usize,
        log: bool,
    },
    /// Layer normalisation over the dims from `axis` on; inputs: x, scale, optional bias. With
    /// `stats` it also returns the float32 mean and inverse standard deviation.
    LayerNorm {
        axis: usize,
        epsilon: f32,
        stats: bool,
    },
    /// RMS normalisation over the dims from `axis` on; inputs: x, scale.
    RmsNorm {
        axis: usize,
        epsilon: f32,
    },
    /// One-hot of the maximum along `axis`.
    Hardmax {
        axis: usize,
    },
    /// Running sum along `axis`.
    CumSum {
        axis: usize,
        exclusive: bool,
        reverse: bool,
    },
    /// Index (int64) of the largest or smallest element along `axis`.
    ArgReduce {
        max: bool,
        axis: usize,
        keep_dims: bool,
        select_last: bool,
    },
    /// The `k` largest (or smallest) elements along `axis` and their int64 indices: two results.
    TopK {
        axis: usize,
        k: u64,
        largest: bool,
    },
    /// Inference batch normalisation over dim 1; inputs: x, scale, bias, mean, var.
    BatchNorm {
        epsilon: f32,
    },
    /// Normalisation of each (sample, channel) over the spatial dims; inputs x, scale, bias.
    InstanceNorm {
        epsilon: f32,
    },
    /// Normalisation of each (sample, group of channels); inputs x, scale, bias (per channel, or
    /// per group before opset 21).
    GroupNorm {
        groups: u64,
        epsilon: f32,
    },
    /// int8/uint8 convolution with int32 results; inputs x, w, optional zero points.
    ConvInteger {
        window: Window,
        group: u64,
    },
    /// Quantized convolution: inputs x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, optional
    /// int32 bias; the result has y_zp's type.
    QLinearConv {
        window: Window,
        group: u64,
    },
    /// Quantized matrix product: inputs a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp.
    QLinearMatMul,
    /// Reduce over `axes` (sorted, distinct); kept as size-1 dims when `keep_dims`.
    Reduce {
        op: ReduceOp,
        axes: Vec<usize>,
        keep_dims: bool,
    },
    Pool {
        kind: PoolKind,
        window: Window,
    },
    /// `saturate(round(x / scale) + zero_point)`; inputs x, scale, optional zero point.
    Quantize {
        axis: usize,
        to: DType,
    },
    /// `(x - zero_point) * scale`; inputs x, scale, optional zero point.
    Dequantize {
        axis: usize,
    },
    /// uint8 quantization with scale and zero point computed from the data: three results.
    DynamicQuantize,
    /// Same elements, new static shape.
    Reshape {
        shape: Vec<u64>,
    },
    /// Permute dims: output dim `i` is input dim `perm[i]`.
    Transpose {
        perm: Vec<usize>,
    },
    Concat {
        axis: usize,
    },
    /// Strided window per dim (one entry per dim, clamped; `steps` may be negative).
    Slice {
        starts: Vec<i64>,
        ends: Vec<i64>,
        steps: Vec<i64>,
    },
    /// Take along `axis` at the indices of input 1 (values may be run-time data).
    Gather {
        axis: usize,
    },
    GatherElements {
        axis: usize,
    },
    GatherNd {
        batch_dims: usize,
    },
    /// Write `updates` at `indices`; `reduction` combines with the existing element.
    ScatterNd {
        reduction: Option<ReduceOp>,
    },
    /// Write `updates` at `indices` along `axis`; inputs data, indices, updates.
    ScatterElements {
        axis: usize,
        reduction: Option<ReduceOp>,
    },
    /// One-hot along `axis` with `depth` classes; inputs indices, values ([off, on]).
    OneHot {
        axis: usize,
        depth: u64,
    },
    /// Broadcast to a static shape.
    Expand {
        shape: Vec<u64>,
    },
    Tile {
        repeats: Vec<u64>,
    },
    /// Pad (or crop, with negative entries): begin pads for every dim, then end pads.
    Pad {
        pads: Vec<i64>,
        mode: PadMode,
    },
    /// Keep the upper (or lower) triangle from diagonal `k` of the last two dims.
    Trilu {
        upper: bool,
        k: i64,
    },
    /// Resample to a static shape.
    Resize {
        shape: Vec<u64>,
        sampling: ResizeSampling,
    },
}

impl OpKind {
    /// Short, stable name used in printed IR and schedules.
    pub fn name(&self) -> &'static str {
        match self {
            OpKind::MatMul => "MatMul",
            OpKind::MatMulBias { .. } => "MatMulBias",
            OpKind::MatMulT => "MatMulT",
            OpKind::MatMulInteger => "MatMulInteger",
            OpKind::Gemm { .. } => "Gemm",
            OpKind::Conv { .. } => "Conv",
            OpKind::ConvTranspose { .. } => "ConvTranspose",
            OpKind::Einsum { .. } => "Einsum",
            OpKind::Binary(op) => op.name(),
            OpKind::Unary(op) => op.name(),
            OpKind::Where => "Where",
            OpKind::Cast { .. } => "Cast",
            OpKind::Softmax { log: false, .. } => "Softmax",
            OpKind::Softmax { log: true, .. } => "LogSoftmax",
            OpKind::LayerNorm { .. } => "LayerNorm",
            OpKind::RmsNorm { .. } => "RmsNorm",
            OpKind::Hardmax { .. } => "Hardmax",
            OpKind::CumSum { .. } => "CumSum",
            OpKind::ArgReduce { max: true, .. } => "ArgMax",
            OpKind::ArgReduce { max: false, .. } => "ArgMin",
            OpKind::TopK { .. } => "TopK",
            OpKind::BatchNorm { .. } => "BatchNorm",
            OpKind::InstanceNorm { .. } => "InstanceNorm",
            OpKind::GroupNorm { .. } => "GroupNorm",
            OpKind::ConvInteger { .. } => "ConvInteger",
            OpKind::QLinearConv { .. } => "QLinearConv",
            OpKind::QLinearMatMul => "QLinearMatMul",
            OpKind::ScatterElements { .. } => "ScatterElements",
            OpKind::OneHot { .. } => "OneHot",
            OpKind::Reduce { op, .. } => match op {
                ReduceOp::Sum => "ReduceSum",
                ReduceOp::Mean => "ReduceMean",
                ReduceOp::Max => "ReduceMax",
                ReduceOp::Min => "ReduceMin",
                ReduceOp::Prod => "ReduceProd",
                ReduceOp::L1 => "ReduceL1",
                ReduceOp::L2 => "ReduceL2",
                ReduceOp::SumSquare => "ReduceSumSquare",
                ReduceOp::LogSum => "ReduceLogSum",
                ReduceOp::LogSumExp => "ReduceLogSumExp",
            },
            OpKind::Pool {
                kind: PoolKind::Max | PoolKind::MaxWithIndices { .. },
                ..
            } => "MaxPool",
            OpKind::Pool {
                kind: PoolKind::Average { .. },
                ..
            } => "AveragePool",
            OpKind::Quantize { .. } => "Quantize",
            OpKind::Dequantize { .. } => "Dequantize",
            OpKind::DynamicQuantize => "DynamicQuantize",
            OpKind::Reshape { .. } => "Reshape",
            OpKind::Transpose { .. } => "Transpose",
            OpKind::Concat { .. } => "Concat",
            OpKind::Slice { .. } => "Slice",
            OpKind::Gather { .. } => "Gather",
            OpKind::GatherElements { .. } => "GatherElements",
            OpKind::GatherNd { .. } => "GatherND",
            OpKind::ScatterNd { .. } => "ScatterND",
            OpKind::Expand { .. } => "Expand",
            OpKind::Tile { .. } => "Tile",
            OpKind::Pad { .. } => "Pad",
            OpKind::Trilu { .. } => "Trilu",
            OpKind::Resize { .. } => "Resize",
        }
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        match self {
            OpKind::Gemm {
                trans_a,
                trans_b,
                alpha,
                beta,
            } => write!(
                f,
                "{{trans_a={trans_a}, trans_b={trans_b}, alpha={alpha:?}, beta={beta:?}}}"
            ),
            OpKind::Conv { window, group } => write!(f, "{{{window}, group={group}}}"),
            OpKind::ConvTranspose {
                window,
                group,
                output_padding,
            } => write!(
                f,
                "{{{window}, group={group}, output_padding={output_padding:?}}}"
            ),
            OpKind::Einsum { equation } => write!(f, "{{{equation}}}"),
            OpKind::MatMulBias { act: Some(act) } => write!(f, "{{act={}}}", act.name()),
            OpKind::Unary(UnaryOp::Gelu { tanh: true }) => f.write_str("{approximate=tanh}"),
            OpKind::Unary(UnaryOp::HardSigmoid { alpha, beta }) => {
                write!(f, "{{alpha={alpha:?}, beta={beta:?}}}")
            }
            OpKind::Unary(UnaryOp::LeakyRelu { alpha } | UnaryOp::Elu { alpha }) => {
                write!(f, "{{alpha={alpha:?}}}")
            }
            OpKind::Unary(UnaryOp::Clip { min, max }) => write!(f, "{{min={min:?}, max={max:?}}}"),
            OpKind::Binary(BinaryOp::Mod { fmod: true }) => f.write_str("{fmod}"),
            OpKind::Cast { to } => write!(f, "{{to={to}}}"),
            OpKind::Softmax { axis, .. } => write!(f, "{{axis={axis}}}"),
            OpKind::LayerNorm { axis, epsilon, stats } => {
                write!(f, "{{axis={axis}, epsilon={epsilon:?}")?;
                if *stats {
                    f.write_str(", stats")?;
                }
                f.write_str("}")
            }
            OpKind::RmsNorm { axis, epsilon } => write!(f, "{{axis={axis}, epsilon={epsilon:?}}}"),
            OpKind::Hardmax { axis } => write!(f, "{{axis={axis}}}"),
            OpKind::CumSum {
                axis,
                exclusive,
                reverse,
            } => write!(f, "{{axis={axis}, exclusive={exclusive}, reverse={reverse}}}"),
            OpKind::ArgReduce {
                axis,
                keep_dims,
                select_last,
                ..
            } => write!(
                f,
                "{{axis={axis}, keep_dims={keep_dims}, select_last={select_last}}}"
            ),
            OpKind::TopK { axis, k, largest } => write!(f, "{{axis={axis}, k={k}, largest={largest}}}"),
            OpKind::ScatterNd { reduction: Some(r) } => write!(f, "{{reduction={r:?}}}"),
            OpKind::Unary(UnaryOp::Selu { alpha, gamma }) => {
                write!(f, "{{alpha={alpha:?}, gamma={gamma:?}}}")
            }
            OpKind::Unary(UnaryOp::ThresholdedRelu { alpha }) => write!(f, "{{alpha={alpha:?}}}"),
            OpKind::BatchNorm { epsilon } | OpKind::InstanceNorm { epsilon } => {
                write!(f, "{{epsilon={epsilon:?}}}")
            }
            OpKind::GroupNorm { groups, epsilon } => write!(f, "{{groups={groups}, epsilon={epsilon:?}}}"),
            OpKind::ConvInteger { window, group } | OpKind::QLinearConv { window, group } => {
                write!(f, "{{{window}, group={group}}}")
            }
            OpKind::ScatterElements { axis, reduction } => {
                write!(f, "{{axis={axis}, reduction={reduction:?}}}")
            }
            OpKind::OneHot { axis, depth } => write!(f, "{{axis={axis}, depth={depth}}}"),
            OpKind::Unary(UnaryOp::Celu { alpha }) => write!(f, "{{alpha={alpha:?}}}"),
            OpKind::Unary(UnaryOp::Shrink { bias, lambd }) => {
                write!(f, "{{bias={bias:?}, lambd={lambd:?}}}")
            }
            OpKind::Reduce { axes, keep_dims, .. } => {
                write!(f, "{{axes={axes:?}, keep_dims={keep_dims}}}")
            }
            OpKind::Pool { kind, window } => match kind {
                PoolKind::Average { count_include_pad } => {
                    write!(f, "{{{window}, count_include_pad={count_include_pad}}}")
                }
                PoolKind::Max => write!(f, "{{{window}}}"),
                PoolKind::MaxWithIndices { column_major } => {
                    write!(f, "{{{window}, indices, column_major={column_major}}}")
                }
            },
            OpKind::Quantize { axis, to } => write!(f, "{{axis={axis}, to={to}}}"),
            OpKind::Dequantize { axis } => write!(f, "{{axis={axis}}}"),
            OpKind::Reshape { shape } => write!(f, "{{shape={shape:?}}}"),
            OpKind::Transpose { perm } => write!(f, "{{perm={perm:?}}}"),
            OpKind::Concat { axis } | OpKind::Gather { axis } | OpKind::GatherElements { axis } => {
                write!(f, "{{axis={axis}}}")
            }
            OpKind::GatherNd { batch_dims } => write!(f, "{{batch_dims={batch_dims}}}"),
            OpKind::Slice { starts, ends, steps } => {
                write!(f, "{{starts={starts:?}, ends={ends:?}, steps={steps:?}}}")
            }
            OpKind::Expand { shape } => write!(f, "{{shape={shape:?}}}"),
            OpKind::Tile { repeats } => write!(f, "{{repeats={repeats:?}}}"),
            OpKind::Pad { pads, mode } => write!(f, "{{pads={pads:?}, mode={mode:?}}}"),
            OpKind::Trilu { upper, k } => write!(f, "{{upper={upper}, k={k}}}"),
            OpKind::Resize { shape, sampling: s } => write!(
                f,
                "{{shape={shape:?}, mode={:?}, coordinates={}, nearest={}, cubic_coeff_a={:?}, exclude_outside={}, antialias={}}}",
                s.mode, s.coordinates, s.nearest, s.cubic_coeff_a, s.exclude_outside, s.antialias
            ),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kernel={:?}, strides={:?}, dilations={:?}, pads={:?}",
            self.kernel, self.strides, self.dilations, self.pads
        )?;
        if self.ceil_mode {
            f.write_str(", ceil_mode")?;
        }
        Ok(())
    }
}

/// An operation: its kind, the values it reads and the values it defines.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Op {
    pub kind: OpKind,
    pub inputs: Vec<ValueId>,
    pub outputs: Vec<ValueId>,
}
