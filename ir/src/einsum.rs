//! Einstein summation equations: ellipsis expansion, shape inference and the contraction sizes the
//! cost model needs.
//!
//! The IR only holds explicit equations over single letters (`bhid,bhjd->bhij`); the frontend
//! expands `...` and the implicit output form with [`explicit_equation`] first.

use crate::infer::{same_dtype, ShapeError};
use crate::TensorType;
use std::collections::BTreeMap;

/// A parsed explicit equation: one index string per operand and the output's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Equation {
    pub operands: Vec<Vec<char>>,
    pub output: Vec<char>,
}

fn invalid(eq: &str, why: &str) -> ShapeError {
    ShapeError::Invalid(format!("einsum '{eq}': {why}"))
}

/// Rewrite `equation` for operands of `ranks` into the explicit, ellipsis-free form.
pub fn explicit_equation(equation: &str, ranks: &[usize]) -> Result<String, ShapeError> {
    let eq: String = equation.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l.to_string(), Some(r.to_string())),
        None => (eq.clone(), None),
    };
    let terms: Vec<&str> = lhs.split(',').collect();
    if terms.len() != ranks.len() {
        return Err(invalid(&eq, "operand count differs from the inputs"));
    }
    let used: Vec<char> = eq.chars().filter(|c| c.is_ascii_alphabetic()).collect();
    let fresh: Vec<char> = ('A'..='Z')
        .chain('a'..='z')
        .filter(|c| !used.contains(c))
        .collect();
    let mut ellipsis_rank = 0;
    for (t, &r) in terms.iter().zip(ranks) {
        if t.contains("...") {
            let letters = t.replace("...", "").chars().count();
            let e = r
                .checked_sub(letters)
                .ok_or_else(|| invalid(&eq, "more indices than dims"))?;
            ellipsis_rank = ellipsis_rank.max(e);
        }
    }
    if ellipsis_rank > fresh.len() {
        return Err(invalid(&eq, "too many dims under the ellipsis"));
    }
    let expand = |t: &str, rank: usize| -> Result<String, ShapeError> {
        if !t.contains("...") {
            return Ok(t.to_string());
        }
        let letters = t.replace("...", "").chars().count();
        let e = rank
            .checked_sub(letters)
            .ok_or_else(|| invalid(&eq, "more indices than dims"))?;
        // Ellipsis dims align from the right, as in numpy broadcasting.
        let fill: String = fresh[ellipsis_rank - e..ellipsis_rank].iter().collect();
        Ok(t.replacen("...", &fill, 1))
    };
    let mut expanded = Vec::new();
    for (t, &r) in terms.iter().zip(ranks) {
        expanded.push(expand(t, r)?);
    }
    let output = match rhs {
        Some(r) => expand(&r, ellipsis_rank + r.replace("...", "").chars().count())?,
        None => {
            let mut counts: BTreeMap<char, usize> = BTreeMap::new();
            for c in expanded.iter().flat_map(|t| t.chars()) {
                *counts.entry(c).or_default() += 1;
            }
            let ell: String = fresh[..ellipsis_rank].iter().collect();
            let mut single: Vec<char> = counts
                .iter()
                .filter(|&(c, &n)| n == 1 && !ell.contains(*c))
                .map(|(&c, _)| c)
                .collect();
            single.sort_unstable();
            ell.chars().chain(single).collect()
        }
    };
    Ok(format!("{}->{output}", expanded.join(",")))
}

/// Parse an explicit equation.
pub fn parse(equation: &str) -> Result<Equation, ShapeError> {
    let (lhs, rhs) = equation
        .split_once("->")
        .ok_or_else(|| invalid(equation, "not explicit"))?;
    let letters = |s: &str| -> Result<Vec<char>, ShapeError> {
        if s.chars().all(|c| c.is_ascii_alphabetic()) {
            Ok(s.chars().collect())
        } else {
            Err(invalid(equation, "indices must be letters"))
        }
    };
    let operands = lhs.split(',').map(letters).collect::<Result<Vec<_>, _>>()?;
    let output = letters(rhs)?;
    for (i, c) in output.iter().enumerate() {
        if output[..i].contains(c) {
            return Err(invalid(equation, "an output index repeats"));
        }
    }
    for t in &operands {
        for (i, c) in t.iter().enumerate() {
            if t[..i].contains(c) {
                return Err(invalid(
                    equation,
                    "an index repeats within one operand (a diagonal)",
                ));
            }
        }
    }
    Ok(Equation { operands, output })
}

/// The size of every index, checking operands agree (a size-1 index broadcasts).
pub fn index_sizes(equation: &str, inputs: &[&TensorType]) -> Result<BTreeMap<char, u64>, ShapeError> {
    let eq = parse(equation)?;
    if eq.operands.len() != inputs.len() {
        return Err(invalid(equation, "operand count differs from the inputs"));
    }
    let mut sizes: BTreeMap<char, u64> = BTreeMap::new();
    for (letters, t) in eq.operands.iter().zip(inputs) {
        if letters.len() != t.shape.rank() {
            return Err(invalid(
                equation,
                &format!("operand {} has rank {}", t, letters.len()),
            ));
        }
        for (&c, &d) in letters.iter().zip(t.shape.dims()) {
            let e = sizes.entry(c).or_insert(d);
            if *e == 1 {
                *e = d;
            } else if d != 1 && *e != d {
                return Err(invalid(equation, &format!("index {c} is both {e} and {d}")));
            }
        }
    }
    for c in &eq.output {
        if !sizes.contains_key(c) {
            return Err(invalid(equation, &format!("output index {c} is on no operand")));
        }
    }
    Ok(sizes)
}

pub(crate) fn infer_einsum(equation: &str, inputs: &[&TensorType]) -> Result<TensorType, ShapeError> {
    if inputs.is_empty() {
        return Err(invalid(equation, "no operands"));
    }
    same_dtype(inputs)?;
    let sizes = index_sizes(equation, inputs)?;
    let eq = parse(equation)?;
    Ok(TensorType::new(
        inputs[0].dtype,
        eq.output.iter().map(|c| sizes[c]).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    #[test]
    fn ellipsis_and_implicit_forms_expand() {
        assert_eq!(explicit_equation("ij,jk", &[2, 2]).unwrap(), "ij,jk->ik");
        assert_eq!(
            explicit_equation("...ij,...jk->...ik", &[4, 3]).unwrap(),
            "ABij,Bjk->ABik"
        );
        assert_eq!(explicit_equation("ii", &[2]).unwrap(), "ii->");
    }

    #[test]
    fn shapes_follow_the_indices() {
        let a = TensorType::new(DType::F32, vec![2, 4, 8, 16]);
        let b = TensorType::new(DType::F32, vec![2, 4, 32, 16]);
        let out = infer_einsum("bhid,bhjd->bhij", &[&a, &b]).unwrap();
        assert_eq!(out.shape.0, vec![2, 4, 8, 32]);
        assert!(infer_einsum("bhid,bhid->bhij", &[&a, &b]).is_err());
        assert!(parse("ii->i").is_err());
    }
}
