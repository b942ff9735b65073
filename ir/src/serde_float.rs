//! Serde for `f64` attributes that may be infinite or NaN (a Clip without a bound, a Pad filled
//! with -inf): JSON has no such numbers, and serde_json would write them as `null`, which reads
//! back as an error. Finite values stay numbers; the others are the strings `"inf"`, `"-inf"` and
//! `"nan"`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Repr {
    Number(f64),
    Text(String),
}

pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
    if x.is_finite() {
        s.serialize_f64(*x)
    } else if x.is_nan() {
        s.serialize_str("nan")
    } else if *x > 0.0 {
        s.serialize_str("inf")
    } else {
        s.serialize_str("-inf")
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    match Repr::deserialize(d)? {
        Repr::Number(x) => Ok(x),
        Repr::Text(t) => match t.as_str() {
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            "nan" => Ok(f64::NAN),
            other => Err(serde::de::Error::custom(format!("'{other}' is not a number"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use crate::{OpKind, UnaryOp};

    #[test]
    fn infinite_bounds_survive_json() {
        let clip = OpKind::Unary(UnaryOp::Clip {
            min: f64::NEG_INFINITY,
            max: 6.0,
        });
        let text = serde_json::to_string(&clip).unwrap();
        assert!(text.contains("\"-inf\""), "{text}");
        assert_eq!(serde_json::from_str::<OpKind>(&text).unwrap(), clip);
    }
}
