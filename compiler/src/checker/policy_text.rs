//! `lpuc ops`: the capability table as text, JSON or Markdown, straight from [`policy_table`], so
//! the published subset is always the enforced one.

use super::capabilities::{policy_table, OpPolicy};

/// How `lpuc ops` prints the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OpsFormat {
    Text,
    Json,
    Markdown,
}

/// The table in `format`, ending with a newline.
pub fn render(format: OpsFormat) -> String {
    let table = policy_table();
    match format {
        OpsFormat::Json => {
            let mut s = serde_json::to_string_pretty(&table).expect("the policy serializes");
            s.push('\n');
            s
        }
        OpsFormat::Markdown => markdown(&table),
        OpsFormat::Text => text(&table),
    }
}

fn explanation(p: &OpPolicy) -> String {
    match (p.category, p.hint.is_empty()) {
        (Some(c), false) => format!("{c}: {} (hint: {})", p.conditions, p.hint),
        (Some(c), true) => format!("{c}: {}", p.conditions),
        (None, _) => p.conditions.clone(),
    }
}

fn text(table: &[OpPolicy]) -> String {
    let width = table.iter().map(|p| p.op.len()).max().unwrap_or(0);
    let mut out = String::new();
    for status in ["supported", "folded", "rejected"] {
        let n = table.iter().filter(|p| p.status == status).count();
        out.push_str(&format!("{n} {status}\n"));
    }
    out.push('\n');
    for p in table {
        out.push_str(&format!(
            "{:width$}  {:9}  {:5}  {}\n",
            p.op,
            p.status,
            p.opsets,
            explanation(p)
        ));
    }
    out
}

fn markdown(table: &[OpPolicy]) -> String {
    let mut out = String::from("| op | status | opsets | conditions or reason |\n|---|---|---|---|\n");
    for p in table {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            p.op,
            p.status,
            p.opsets,
            explanation(p).replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_lists_every_op() {
        let n = policy_table().len();
        assert_eq!(markdown(&policy_table()).lines().count(), n + 2);
        assert!(text(&policy_table()).contains("MatMul"));
        let json: serde_json::Value = serde_json::from_str(&render(OpsFormat::Json)).unwrap();
        assert_eq!(json.as_array().unwrap().len(), n);
    }
}
