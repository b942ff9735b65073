//! Shape subgraphs as exporters trace them: `x.size(i)` becomes Shape -> Gather, a new shape becomes
//! Unsqueeze -> Concat, so reshapes depend on runtime extents rather than on constants.
//!
//! Also the ops whose axes moved from an attribute to an input between opsets (Unsqueeze at 13,
//! ReduceMean at 18): the helpers pick the form the net's opset defines.

use crate::builder::{attr_int, attr_ints};
use crate::net::Net;

/// The scalar (rank-0 int64) extent of `x` along `axis`: Shape -> Gather(index, axis 0).
pub fn dim(net: &mut Net, scope: &str, x: &str, axis: i64) -> String {
    let shape = net.op(scope, "Shape", &[x], vec![]);
    let index = net.int(scope, axis);
    net.op(scope, "Gather", &[&shape, &index], vec![attr_int("axis", 0)])
}

/// Unsqueeze with `axes` as an input (opset 13+) or an attribute (before 13).
pub fn unsqueeze(net: &mut Net, scope: &str, x: &str, axes: &[i64]) -> String {
    if net.opset() >= 13 {
        let axes = net.ints(scope, axes);
        net.op(scope, "Unsqueeze", &[x, &axes], vec![])
    } else {
        net.op(scope, "Unsqueeze", &[x], vec![attr_ints("axes", axes)])
    }
}

/// ReduceMean keeping the reduced axes, with `axes` as an input (opset 18+) or an attribute.
pub fn reduce_mean(net: &mut Net, scope: &str, x: &str, axes: &[i64]) -> String {
    if net.opset() >= 18 {
        let axes = net.ints(scope, axes);
        net.op(scope, "ReduceMean", &[x, &axes], vec![attr_int("keepdims", 1)])
    } else {
        net.op(
            scope,
            "ReduceMean",
            &[x],
            vec![attr_ints("axes", axes), attr_int("keepdims", 1)],
        )
    }
}

/// One entry of a shape vector built at run time.
#[derive(Clone, Copy, Debug)]
pub enum Extent<'a> {
    /// The extent of a value along an axis (Shape -> Gather -> Unsqueeze).
    Of(&'a str, i64),
    /// An already computed scalar extent (-> Unsqueeze).
    Scalar(&'a str),
    /// A known extent (a one-element Constant).
    Fixed(i64),
}

/// A 1-D int64 shape: each entry made 1-D, then Concat along axis 0.
pub fn shape_vector(net: &mut Net, scope: &str, extents: &[Extent]) -> String {
    let parts: Vec<String> = extents
        .iter()
        .map(|e| match *e {
            Extent::Of(x, axis) => {
                let d = dim(net, scope, x, axis);
                unsqueeze(net, scope, &d, &[0])
            }
            Extent::Scalar(s) => unsqueeze(net, scope, s, &[0]),
            Extent::Fixed(v) => net.ints(scope, &[v]),
        })
        .collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    net.op(scope, "Concat", &parts, vec![attr_int("axis", 0)])
}

/// `x` reshaped to a shape computed from `extents`.
pub fn reshape(net: &mut Net, scope: &str, x: &str, extents: &[Extent]) -> String {
    let shape = shape_vector(net, scope, extents);
    net.op(scope, "Reshape", &[x, &shape], vec![])
}
