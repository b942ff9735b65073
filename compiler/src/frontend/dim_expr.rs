//! Symbolic dims written as expressions (`past_sequence + 1`, `2*seq`, `(a+b)/2`), as exporters
//! write them for shapes derived from other dims. A small recursive-descent evaluator over
//! integers with `+ - * /` (floor division) and parentheses; names are looked up by the caller.

/// Evaluate `expr`, resolving names with `lookup`; `None` if it does not parse, a name is unbound,
/// or the arithmetic overflows or divides by zero.
pub fn evaluate(expr: &str, lookup: &dyn Fn(&str) -> Option<u64>) -> Option<i64> {
    // A dim name comes from the (untrusted) model: bound its size so nesting cannot exhaust the stack.
    if expr.len() > MAX_EXPR_LEN {
        return None;
    }
    let tokens = tokenize(expr)?;
    let mut p = Parser {
        tokens: &tokens,
        pos: 0,
        lookup,
    };
    let v = p.sum()?;
    (p.pos == tokens.len()).then_some(v)
}

/// Longest expression evaluated; real exporters write a few dozen characters.
const MAX_EXPR_LEN: usize = 256;

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Num(i64),
    Name(String),
    Op(char),
}

fn tokenize(s: &str) -> Option<Vec<Token>> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            out.push(Token::Num(
                chars[start..i].iter().collect::<String>().parse().ok()?,
            ));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.') {
                i += 1;
            }
            out.push(Token::Name(chars[start..i].iter().collect()));
        } else if "+-*/()".contains(c) {
            out.push(Token::Op(c));
            i += 1;
        } else {
            return None;
        }
    }
    Some(out)
}

struct Parser<'a> {
    tokens: &'a [Token],
    pos: usize,
    lookup: &'a dyn Fn(&str) -> Option<u64>,
}

impl Parser<'_> {
    fn peek_op(&self) -> Option<char> {
        match self.tokens.get(self.pos) {
            Some(Token::Op(c)) => Some(*c),
            _ => None,
        }
    }

    fn sum(&mut self) -> Option<i64> {
        let mut v = self.product()?;
        while let Some(op @ ('+' | '-')) = self.peek_op() {
            self.pos += 1;
            let r = self.product()?;
            v = if op == '+' {
                v.checked_add(r)?
            } else {
                v.checked_sub(r)?
            };
        }
        Some(v)
    }

    fn product(&mut self) -> Option<i64> {
        let mut v = self.atom()?;
        while let Some(op @ ('*' | '/')) = self.peek_op() {
            self.pos += 1;
            let r = self.atom()?;
            v = if op == '*' {
                v.checked_mul(r)?
            } else {
                v.checked_div_euclid(r)?
            };
        }
        Some(v)
    }

    fn atom(&mut self) -> Option<i64> {
        let t = self.tokens.get(self.pos)?.clone();
        self.pos += 1;
        match t {
            Token::Num(n) => Some(n),
            Token::Name(n) => (self.lookup)(&n).and_then(|v| i64::try_from(v).ok()),
            Token::Op('(') => {
                let v = self.sum()?;
                (self.peek_op() == Some(')')).then(|| self.pos += 1)?;
                Some(v)
            }
            Token::Op('-') => self.atom()?.checked_neg(),
            Token::Op(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(n: &str) -> Option<u64> {
        match n {
            "seq" => Some(10),
            "past" => Some(7),
            _ => None,
        }
    }

    #[test]
    fn evaluates_exporter_expressions() {
        assert_eq!(evaluate("past + 1", &lookup), Some(8));
        assert_eq!(evaluate("2*seq - (past+1)/2", &lookup), Some(16));
        assert_eq!(evaluate("seq / 0", &lookup), None);
        assert_eq!(evaluate("other + 1", &lookup), None);
        assert_eq!(evaluate("seq +", &lookup), None);
        assert_eq!(evaluate("seq $ 1", &lookup), None);
        let deep = format!("{}seq{}", "(".repeat(100_000), ")".repeat(100_000));
        assert_eq!(evaluate(&deep, &lookup), None);
    }
}
