//! The forms of a model's graph the driver chooses between, and the choice.
//!
//! Rewrites that are better on some placements and worse on others are not applied blindly:
//! the passes give the graph as it is and each alternative form, every form is placed, and the
//! better placement wins (fewest chips, then the shortest bottleneck, when no chip count was
//! given; the shortest bottleneck on the chips given otherwise). The report's placement method
//! says which form was chosen. On one chip, the shorter schedule wins.

use super::CompileError;
use crate::passes::saturate::{saturate, Fired};
use crate::passes::{grouped_attention, run_passes};
use crate::placer::{place_with_plan, PlaceError, PlaceOptions, Placement, StagePlan};
use crate::scheduler::{schedule_graph, ScheduleError, SramUse};
use lpuc_artifact::report::Rewrites;
use lpuc_artifact::Schedule;
use lpuc_ir::Graph;
use lpuc_target::Target;
use std::collections::BTreeMap;

/// The graph after the passes, and the grouped-attention form when the model has one.
pub struct Forms {
    pub plain: Graph,
    /// The form with keys and values broadcast, and how many attentions it changed.
    pub grouped: Option<(Graph, usize)>,
    /// How many times each saturation rule fired on the graph.
    pub fired: Fired,
    /// Ops of the graph before any rewrite.
    pub ops_before: usize,
}

impl Forms {
    /// Run the passes on `graph` and, with `rewrite`, the equality-saturation rewrites
    /// (`passes::saturate`, never worse by the target's cost), and build its alternative forms.
    pub fn new(graph: Graph, rewrite: bool, target: &Target) -> Result<Self, CompileError> {
        let internal = |errors| CompileError::Internal {
            stage: "passes",
            errors,
        };
        let mut plain = run_passes(graph).map_err(internal)?;
        let ops_before = plain.num_ops();
        let mut fired = Fired::new();
        if rewrite {
            let (simplified, counts) = saturate(&plain, target);
            if !counts.is_empty() {
                plain = run_passes(simplified).map_err(internal)?;
                fired = counts;
            }
        }
        let grouped = if rewrite {
            grouped_attention(&plain).map_err(internal)?
        } else {
            None
        };
        Ok(Forms {
            plain,
            grouped,
            fired,
            ops_before,
        })
    }

    /// The form `--stop-after passes` shows: every rewrite applied.
    pub fn rewritten(&self) -> &Graph {
        self.grouped.as_ref().map_or(&self.plain, |(g, _)| g)
    }

    /// Schedule every form on one chip and keep the shorter schedule (the plain form on a tie);
    /// an error when the plain form cannot be scheduled, or neither can.
    pub fn schedule_single(&self, target: &Target) -> Result<(&Graph, Schedule, SramUse), ScheduleError> {
        let plain = schedule_graph(&self.plain, target).map(|(s, m)| (&self.plain, s, m));
        let Some((grouped, _)) = &self.grouped else {
            return plain;
        };
        match (
            plain,
            schedule_graph(grouped, target).map(|(s, m)| (grouped, s, m)),
        ) {
            (Ok(a), Ok(b)) if b.1.makespan_cycles < a.1.makespan_cycles => Ok(b),
            (Ok(a), _) => Ok(a),
            (Err(_), Ok(b)) => Ok(b),
            (Err(e), Err(_)) => Err(e),
        }
    }

    /// What the rewrites did to reach `chosen` (one of the forms), or `None` when nothing changed.
    pub fn rewrites(&self, chosen: &Graph) -> Option<Rewrites> {
        let mut fired: BTreeMap<String, u64> =
            self.fired.iter().map(|(k, &n)| (k.clone(), n as u64)).collect();
        if let Some((grouped, count)) = &self.grouped {
            if std::ptr::eq(chosen, grouped) {
                fired.insert("broadcast-repeated-heads".into(), *count as u64);
            }
        }
        (!fired.is_empty()).then(|| Rewrites {
            fired,
            ops_before: self.ops_before as u64,
            ops_after: chosen.num_ops() as u64,
        })
    }

    /// Place every form and keep the better; with neither placeable, the error that asks for
    /// the fewest chips.
    pub fn place(
        &self,
        target: &Target,
        opts: &PlaceOptions,
    ) -> Result<(&Graph, Placement, Vec<StagePlan>), CompileError> {
        let plain = place_with_plan(&self.plain, target, opts);
        let Some((grouped_graph, count)) = &self.grouped else {
            let (p, plan) = plain?;
            return Ok((&self.plain, p, plan));
        };
        let grouped = place_with_plan(grouped_graph, target, opts);
        let fewest = opts.chips.is_none();
        let key = |p: &Placement| {
            if fewest {
                (u64::from(p.chips_used), p.bottleneck_cycles)
            } else {
                (p.bottleneck_cycles, u64::from(p.chips_used))
            }
        };
        let note = |p: &mut Placement, text: String| p.method = format!("{}; {text}", p.method);
        match (plain, grouped) {
            (Ok((mut a, plan_a)), Ok((mut b, plan_b))) => {
                if key(&b) <= key(&a) {
                    note(&mut b, format!("grouped attention broadcasts keys and values ({count} attentions; copying them per head placed no better)"));
                    Ok((grouped_graph, b, plan_b))
                } else {
                    note(&mut a, format!("grouped attention copies keys and values per head (broadcasting them in {count} attentions placed worse)"));
                    Ok((&self.plain, a, plan_a))
                }
            }
            (Ok((mut a, plan)), Err(_)) => {
                note(&mut a, format!("grouped attention copies keys and values per head (broadcasting them in {count} attentions did not place)"));
                Ok((&self.plain, a, plan))
            }
            (Err(_), Ok((mut b, plan))) => {
                note(&mut b, format!("grouped attention broadcasts keys and values ({count} attentions; copying them per head did not place)"));
                Ok((grouped_graph, b, plan))
            }
            (Err(a), Err(b)) => Err(CompileError::Placement(closer(a, b))),
        }
    }
}

/// Of two placement errors, the one asking for fewer chips (the plain form's when neither
/// names a count).
fn closer(plain: PlaceError, grouped: PlaceError) -> PlaceError {
    let needs = |e: &PlaceError| match e {
        PlaceError::TooFewChips { min_chips, .. } => Some(*min_chips),
        PlaceError::CrossRack { chips, .. } => Some(*chips),
        _ => None,
    };
    match (needs(&plain), needs(&grouped)) {
        (Some(a), Some(b)) if b < a => grouped,
        (None, Some(_)) => grouped,
        _ => plain,
    }
}
