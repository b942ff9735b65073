//! The forms of a model's graph the driver chooses between, and the choice.
//!
//! Rewrites are judged by the target's cost op by op, but a placement is judged by its chips and
//! its slowest stage, which a rewrite can make better or worse (grouped attention broadcasting its
//! keys and values splits by key/value head on 8 chips but must re-gather queries on 16; a fused
//! norm is faster but its stage may need a chip more). So the passes give the graph as exported
//! and each rewritten form (the saturation rules, grouped attention, both), every form is placed,
//! and the better placement wins: fewest chips, then the shortest bottleneck, when no chip count
//! was given; the shortest bottleneck on the chips given otherwise; on a tie the more rewritten
//! form. On one chip, the shortest schedule wins. The report says which form was chosen and which
//! rules made it.

use super::CompileError;
use crate::passes::fold_transposed_operand::fold_transposed_operand;
use crate::passes::saturate::saturate;
use crate::passes::{grouped_attention, grouped_attention_in, run_passes};
use crate::placer::{place_preferred, place_with_plan, PlaceError, PlaceOptions, Placement, StagePlan};
use crate::scheduler::{schedule_graph, ScheduleError, SramUse};
use lpuc_artifact::report::Rewrites;
use lpuc_artifact::Schedule;
use lpuc_ir::Graph;
use lpuc_target::Target;
use rayon::prelude::*;
use std::collections::BTreeMap;

/// One form's placement and the plan the scheduler follows, or why it has none.
type PlaceResult = Result<(Placement, Vec<StagePlan>), PlaceError>;

/// A form's graph placed: the graph, its placement, and the plan the fabric scheduler runs.
pub type Placed<'a> = (&'a Graph, Placement, Vec<StagePlan>);

/// One form of the graph, and the rules (with how often each fired) that made it.
pub struct Form {
    pub graph: Graph,
    pub fired: BTreeMap<String, u64>,
}

/// Every form, the most rewritten first and the graph as exported (after dead-op elimination)
/// last.
pub struct Forms {
    pub forms: Vec<Form>,
    /// Ops of the graph before any rewrite.
    pub ops_before: usize,
}

impl Forms {
    /// Run the passes on `graph` and, with `rewrite`, build its rewritten forms.
    pub fn new(graph: Graph, rewrite: bool, target: &Target) -> Result<Self, CompileError> {
        let internal = |errors| CompileError::Internal {
            stage: "passes",
            errors,
        };
        let plain = run_passes(graph).map_err(internal)?;
        let ops_before = plain.num_ops();
        let mut forms = vec![Form {
            graph: plain,
            fired: BTreeMap::new(),
        }];
        if rewrite {
            let (saturated, counts) = saturate(&forms[0].graph, target);
            if !counts.is_empty() {
                let graph = run_passes(saturated).map_err(internal)?;
                let fired = counts.into_iter().map(|(k, n)| (k, n as u64)).collect();
                forms.push(Form { graph, fired });
            }
            // Grouped attention on each form so far.
            let bases = forms.len();
            for i in 0..bases {
                if let Some((graph, count)) = grouped_attention(&forms[i].graph).map_err(internal)? {
                    let mut fired = forms[i].fired.clone();
                    fired.insert("broadcast-repeated-heads".into(), count as u64);
                    forms.push(Form { graph, fired });
                }
            }
            // And, on the most rewritten of them, grouped attention with as many groups as two
            // nodes have chips: a 16-chip group then splits attention by group with one key and
            // value head a chip (what lets a 70B prefill at 4096 tokens fit 576 chips), where the
            // plain grouping keeps every key and value head on every chip. One form, not one per
            // base, since each form costs a placement.
            let groups = 2 * u64::from(target.topology.chips_per_node);
            let last = &forms[bases - 1];
            if let Some((graph, count)) = grouped_attention_in(&last.graph, groups).map_err(internal)? {
                let mut fired = last.fired.clone();
                fired.insert(
                    format!("broadcast-repeated-heads-in-{groups}-groups"),
                    count as u64,
                );
                forms.push(Form { graph, fired });
            }
        }
        if rewrite {
            // Transposed operands folded into the products reading them, last (saturation and
            // grouped attention match the products with their transposes), as a form of its own
            // beside each: the fold saves a pass, but its sharding can place on more chips (the
            // 70B prefill at 4096 tokens: 656 with it, 648 without).
            for i in 0..forms.len() {
                let (graph, count) = fold_transposed_operand(&forms[i].graph);
                if count > 0 {
                    let mut fired = forms[i].fired.clone();
                    fired.insert("transpose-into-matmul".into(), count as u64);
                    forms.push(Form { graph, fired });
                }
            }
        }
        // The most rewritten first: more rules, then more firings.
        forms.sort_by_key(|f| std::cmp::Reverse((f.fired.len(), f.fired.values().sum::<u64>())));
        Ok(Forms { forms, ops_before })
    }

    /// The form `--stop-after passes` shows: the most rewritten.
    pub fn rewritten(&self) -> &Graph {
        &self.forms[0].graph
    }

    /// The graph as exported (the form no rule made).
    pub fn plain(&self) -> &Graph {
        let f = self.forms.iter().find(|f| f.fired.is_empty());
        &f.expect("the graph as exported is always a form").graph
    }

    /// Schedule every form on one chip and keep the shortest schedule (the more rewritten form
    /// on a tie), with the makespan of the graph as exported; the first form's error when none
    /// can be scheduled.
    pub fn schedule_single(
        &self,
        target: &Target,
    ) -> Result<(&Graph, Schedule, SramUse, Option<u64>), ScheduleError> {
        let mut best: Option<(&Graph, Schedule, SramUse)> = None;
        let mut first_error = None;
        let mut plain = None;
        for f in &self.forms {
            match schedule_graph(&f.graph, target) {
                Ok((s, m)) => {
                    if f.fired.is_empty() {
                        plain = Some(s.makespan_cycles);
                    }
                    if best
                        .as_ref()
                        .is_none_or(|b| s.makespan_cycles < b.1.makespan_cycles)
                    {
                        best = Some((&f.graph, s, m));
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        best.map(|(g, s, m)| (g, s, m, plain))
            .ok_or_else(|| first_error.expect("there is at least one form"))
    }

    /// What the rewrites did to reach `chosen` (one of the forms), or `None` when nothing changed:
    /// with the predicted cycles of the graph as exported and of `chosen`, both `measure`.
    pub fn rewrites(&self, chosen: &Graph, cycles: (Option<u64>, u64), measure: &str) -> Option<Rewrites> {
        let form = self.forms.iter().find(|f| std::ptr::eq(&f.graph, chosen))?;
        (!form.fired.is_empty()).then(|| Rewrites {
            fired: form.fired.clone(),
            ops_before: self.ops_before as u64,
            ops_after: chosen.num_ops() as u64,
            cycles_before: cycles.0,
            cycles_after: cycles.1,
            cycles_measure: measure.to_string(),
        })
    }

    /// Place every form and keep the better; with none placeable, the error that asks for the
    /// fewest chips.
    pub fn place(&self, target: &Target, opts: &PlaceOptions) -> Result<Placed<'_>, CompileError> {
        let mut ranked = self.place_ranked(target, opts)?;
        Ok(ranked.remove(0))
    }

    /// Every form's placement, best first (see the module doc); with none placeable, the error
    /// that asks for the fewest chips. The driver schedules them in order until one fits: the
    /// placer's SRAM figures are estimates, and the scheduler's are exact.
    pub fn place_ranked(
        &self,
        target: &Target,
        opts: &PlaceOptions,
    ) -> Result<Vec<Placed<'_>>, CompileError> {
        let fewest = opts.chips.is_none();
        let key = |p: &Placement| {
            if fewest {
                (u64::from(p.chips_used), p.bottleneck_cycles)
            } else {
                (p.bottleneck_cycles, u64::from(p.chips_used))
            }
        };
        let mut placed: Vec<(usize, Placement, Vec<StagePlan>)> = Vec::new();
        let mut errors: Vec<PlaceError> = Vec::new();
        // Forms are placed in parallel and their answers taken in form order, so the ranking
        // never depends on which thread finished first. Every form is held to the preferred
        // program size first; only when none places that way may programs grow.
        let place_all = |place: fn(&Graph, &Target, &PlaceOptions) -> PlaceResult| -> Vec<PlaceResult> {
            self.forms
                .par_iter()
                .map(|f| place(&f.graph, target, opts))
                .collect()
        };
        let mut answers = place_all(place_preferred);
        if answers.iter().all(|a| a.is_err()) {
            answers = place_all(place_with_plan);
        }
        for (i, answer) in answers.into_iter().enumerate() {
            match answer {
                Ok((p, plan)) => placed.push((i, p, plan)),
                Err(e) => errors.push(e),
            }
        }
        if placed.is_empty() {
            let e = errors
                .into_iter()
                .reduce(closer)
                .expect("every form failed, so there is an error");
            return Err(CompileError::Placement(e));
        }
        // Stable: on equal keys the more rewritten form (earlier) stays first.
        placed.sort_by_key(|(_, p, _)| key(p));
        let count = self.forms.len();
        Ok(placed
            .into_iter()
            .enumerate()
            .map(|(rank, (i, mut p, plan))| {
                if count > 1 {
                    let rules: Vec<&str> = self.forms[i].fired.keys().map(String::as_str).collect();
                    let chosen = if rules.is_empty() {
                        "the graph as exported".to_string()
                    } else {
                        format!("rewritten by {}", rules.join(", "))
                    };
                    let standing = if rank == 0 {
                        "placed best".to_string()
                    } else {
                        format!(
                            "placed {} best (those placed better did not fit SRAM when scheduled)",
                            ordinal(rank + 1)
                        )
                    };
                    p.method = format!(
                        "{}; {count} forms of the graph placed, {chosen} {standing}",
                        p.method
                    );
                }
                (&self.forms[i].graph, p, plan)
            })
            .collect())
    }
}

fn ordinal(n: usize) -> String {
    match n {
        2 => "second".into(),
        3 => "third".into(),
        n => format!("{n}th"),
    }
}

/// Of two placement errors, the one asking for fewer chips (the first when neither names a
/// count).
fn closer(first: PlaceError, second: PlaceError) -> PlaceError {
    let needs = |e: &PlaceError| match e {
        PlaceError::TooFewChips { min_chips, .. } => Some(*min_chips),
        PlaceError::CrossRack { chips, .. } => Some(*chips),
        _ => None,
    };
    match (needs(&first), needs(&second)) {
        (Some(a), Some(b)) if b < a => second,
        (None, Some(_)) => second,
        _ => first,
    }
}
