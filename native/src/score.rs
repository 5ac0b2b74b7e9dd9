//! The health score and its words: the components' measures, weights and reasons.

use rustc_hash::FxHashMap as HashMap;

use crate::components::Component;
use crate::declared::Declared;
use crate::fmt::{f0, floor_div, g, py_max, py_round};
use crate::tenant::{Measure, Tenant, Val, COMPONENTS, MS_PER_HOUR};

/// The most components in all, built-in and declared (a bit each in a tenant's `stale`;
/// vigil.config.settings.MAX_COMPONENTS).
pub const MAX_COMPONENTS: usize = 32;

/// Every component's measure, in the order of health records.
pub type AllMeasures = [Measure; MAX_COMPONENTS];

/// A component in the order of health records: one of the engine's own (by its place
/// among them) or one declared over measures (by its place among those).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Slot {
    BuiltIn(usize),
    Declared(usize),
}

// The engine's components whose words depend on their measure and the settings only
// (the declared ones' all do).
const WORDS_FROM_MEASURE: [bool; COMPONENTS] = [false; COMPONENTS];

/// health.components, as numbers.
pub struct Parts {
    pub weights: [f64; COMPONENTS],
    pub support_zero_at: f64,
    pub p1_counts_as: f64,
    pub overdue_penalty: f64,
    pub failed_penalty: f64,
    pub expected_steps: Vec<String>,
    pub stalled_factor: f64,
}

pub struct Scorer {
    pub parts: Parts,
    /// The components declared in the settings, in place of built-in ones or besides.
    pub declared: Vec<Component>,
    /// Every component, in the order of health records.
    pub order: Vec<Slot>,
    pub stall_after: i64,
    // The components' names as the reasons say them ("login activity").
    spoken: Vec<String>,
    // The most reason lines kept worded (vigil.engine.shard.MEMO_SIZE): emptied when full.
    pub memo_size: usize,
    spread: HashMap<u32, Option<[f64; MAX_COMPONENTS]>>,
    lines: HashMap<(usize, u64, u64, u64), String>,
}

fn bits(x: f64) -> u64 {
    (x + 0.0).to_bits() // -0.0 and 0.0 are one key, as in Python
}

pub fn measure_key(index: usize, measure: Measure, weight: f64) -> (usize, u64, u64, u64) {
    match measure {
        None => (index, u64::MAX, u64::MAX, bits(weight)),
        Some((value, share)) => (index, bits(value.as_f64()), bits(share), bits(weight)),
    }
}

impl Scorer {
    /// `order`: every component's name and slot, in the order of health records.
    pub fn new(
        parts: Parts,
        declared: Vec<Component>,
        order: &[(String, Slot)],
        stall_after: i64,
        memo_size: usize,
    ) -> Self {
        let spoken = order
            .iter()
            .map(|(name, _)| name.replace('_', " "))
            .collect();
        Scorer {
            parts,
            declared,
            order: order.iter().map(|(_, slot)| *slot).collect(),
            stall_after,
            spoken,
            memo_size,
            spread: HashMap::default(),
            lines: HashMap::default(),
        }
    }

    pub fn cached_lines(&self) -> usize {
        self.lines.len()
    }

    /// How many components there are, built-in and declared.
    pub fn total(&self) -> usize {
        self.order.len()
    }

    /// The stale bits of the declared components.
    pub fn declared_bits(&self) -> u32 {
        self.declared.iter().fold(0, |bits, c| bits | c.bit)
    }

    /// The stale bits of the declared components that read each of `measures` declared
    /// measures, by measure.
    pub fn readers(&self, measures: usize) -> Vec<u32> {
        let mut bits = vec![0; measures];
        for component in &self.declared {
            for measure in component.reads() {
                bits[measure] |= component.bit;
            }
        }
        bits
    }

    /// Every component's measure as the tenant holds it.
    pub fn all_measures(&self, t: &Tenant) -> AllMeasures {
        let mut all = [None; MAX_COMPONENTS];
        for (place, slot) in self.order.iter().enumerate() {
            all[place] = match *slot {
                Slot::BuiltIn(index) => t.measures[index],
                Slot::Declared(own) => t.components[own],
            };
        }
        all
    }

    fn weight(&self, place: usize) -> f64 {
        match self.order[place] {
            Slot::BuiltIn(index) => self.parts.weights[index],
            Slot::Declared(own) => self.declared[own].weight,
        }
    }

    /// The score alone, None when no measure moved (or none has data). `declared` and
    /// the tenant's `measured` are what the declared components read.
    pub fn rescore(
        &mut self,
        t: &mut Tenant,
        declared: &Declared,
        now: i64,
        reweigh: bool,
    ) -> Option<f64> {
        let mut changed = reweigh || t.score.is_none();
        let stale = t.stale;
        for &slot in &self.order {
            let (fresh, old) = match slot {
                Slot::BuiltIn(index) if stale >> index & 1 == 1 => {
                    let fresh = self.measure(index, t, now);
                    (fresh, std::mem::replace(&mut t.measures[index], fresh))
                }
                Slot::Declared(own) if stale & self.declared[own].bit != 0 => {
                    let fresh = self.declared[own].measure(declared, &t.measured, now);
                    (fresh, std::mem::replace(&mut t.components[own], fresh))
                }
                _ => continue,
            };
            match (fresh, old) {
                (Some(f), Some(o)) => changed |= f.1 != o.1,
                (None, None) => {}
                _ => changed = true,
            }
        }
        t.stale = 0;
        if !changed {
            return None;
        }
        let all = self.all_measures(t);
        let weights = self.weights(&all)?;
        let mut score = 0.0;
        for (weight, m) in weights.iter().zip(all.iter()).take(self.total()) {
            if let Some((_, share)) = m {
                score += weight * share;
            }
        }
        Some(score)
    }

    /// Points available per component given which have data; None if none has.
    pub fn weights(&mut self, measures: &AllMeasures) -> Option<[f64; MAX_COMPONENTS]> {
        let mut present = 0u32;
        for (index, m) in measures.iter().enumerate() {
            if m.is_some() {
                present |= 1 << index;
            }
        }
        if let Some(spread) = self.spread.get(&present) {
            return *spread;
        }
        let mut total = 0.0;
        for index in 0..self.total() {
            if present >> index & 1 == 1 {
                total += self.weight(index);
            }
        }
        let spread = if total > 0.0 {
            let scale = 100.0 / total;
            let mut out = [0.0; MAX_COMPONENTS];
            for (index, weight) in out.iter_mut().enumerate().take(self.total()) {
                if present >> index & 1 == 1 {
                    *weight = self.weight(index) * scale;
                }
            }
            Some(out)
        } else {
            None
        };
        self.spread.insert(present, spread);
        spread
    }

    fn measure(&self, index: usize, t: &mut Tenant, now: i64) -> Measure {
        let p = &self.parts;
        match index {
            // support_load
            0 => {
                if !t.tickets_seen {
                    return None;
                }
                let open_total = t.open_tickets.len() as i64;
                let open_p1 = count_of(&t.open_tickets, "P1") as i64;
                let load = open_total as f64 + (p.p1_counts_as - 1.0) * open_p1 as f64;
                Some((
                    Val::Int(open_total),
                    py_max(0.0, 1.0 - load / p.support_zero_at),
                ))
            }
            // sentiment
            1 => {
                let mut sum = 0.0;
                let mut n = 0;
                if let Some(nps) = t.nps {
                    sum += nps / 10.0;
                    n += 1;
                }
                if let Some(csat) = t.csat {
                    sum += (csat - 1.0) / 4.0;
                    n += 1;
                }
                if n == 0 {
                    return None;
                }
                let fraction = sum / n as f64;
                Some((Val::Float(py_round(fraction * 10.0, 2)), fraction))
            }
            // billing
            2 => {
                if !t.invoices_seen {
                    return None;
                }
                let overdue = count_of(&t.unpaid_invoices, "overdue");
                let failed = count_of(&t.unpaid_invoices, "failed");
                let penalty = overdue as f64 * p.overdue_penalty + failed as f64 * p.failed_penalty;
                Some((
                    Val::Int(t.unpaid_invoices.len() as i64),
                    py_max(0.0, 1.0 - penalty),
                ))
            }
            // integrations
            3 => {
                if t.integrations.is_empty() {
                    return None;
                }
                let connected = count_of(&t.integrations, "connected");
                let share = connected as f64 / t.integrations.len() as f64;
                Some((Val::Int(connected as i64), share))
            }
            // onboarding
            _ => {
                let last = t.last_progress?;
                if !t.onboarding_open() {
                    return None;
                }
                let mut expected: Vec<&String> = p.expected_steps.iter().collect();
                expected.sort();
                expected.dedup();
                let done = expected
                    .iter()
                    .filter(|s| t.onboarding_steps.contains(**s))
                    .count();
                let mut fraction = if p.expected_steps.is_empty() {
                    1.0
                } else {
                    done as f64 / p.expected_steps.len() as f64
                };
                if now - last > self.stall_after {
                    fraction *= p.stalled_factor;
                }
                Some((Val::Int(done as i64), fraction))
            }
        }
    }

    /// The reasons: the biggest loss of points first, then what had no data.
    pub fn reasons(
        &mut self,
        t: &Tenant,
        measures: &AllMeasures,
        weights: &[f64; MAX_COMPONENTS],
        now: i64,
    ) -> Vec<String> {
        let mut losing: Vec<(f64, String)> = Vec::new();
        let mut missing: Vec<&str> = Vec::new();
        for index in 0..self.total() {
            let Some((value, share)) = measures[index] else {
                missing.push(&self.spoken[index]);
                continue;
            };
            let weight = weights[index];
            let lost = weight * (1.0 - share);
            if lost < 0.5 {
                continue;
            }
            let key = measure_key(index, measures[index], weight);
            let line = match self.lines.get(&key) {
                Some(line) => line.clone(),
                None => {
                    let (said, from_measure) = match self.order[index] {
                        Slot::BuiltIn(own) => {
                            (self.explain(own, t, value, now), WORDS_FROM_MEASURE[own])
                        }
                        Slot::Declared(own) => (self.declared[own].explain(value), true),
                    };
                    let line = format!("{said} (-{} pts)", f0(lost));
                    if from_measure {
                        if self.lines.len() >= self.memo_size {
                            self.lines.clear();
                        }
                        self.lines.insert(key, line.clone());
                    }
                    line
                }
            };
            losing.push((lost, line));
        }
        losing.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
        let mut said: Vec<String> = losing.into_iter().map(|(_, line)| line).collect();
        if said.is_empty() {
            said.push("every component with data is at or near full points".into());
        }
        if !missing.is_empty() {
            said.push(format!(
                "no data for {}: weight spread over the other components",
                missing.join(", ")
            ));
        }
        said
    }

    fn explain(&self, index: usize, t: &Tenant, value: Val, now: i64) -> String {
        let p = &self.parts;
        match index {
            // support_load
            0 => {
                let open_p1 = count_of(&t.open_tickets, "P1");
                if value.as_f64() == 1.0 {
                    if open_p1 > 0 {
                        "1 open ticket, a P1"
                    } else {
                        "1 open ticket"
                    }
                    .into()
                } else {
                    let p1 = if open_p1 > 0 {
                        open_p1.to_string()
                    } else {
                        "none".into()
                    };
                    format!("{} open tickets, {p1} of them P1", num0(value))
                }
            }
            // sentiment
            1 => {
                let mut words = Vec::new();
                if let Some(nps) = t.nps {
                    words.push(format!("NPS {}/10", g(nps)));
                }
                if let Some(csat) = t.csat {
                    words.push(format!("CSAT {}/5", g(csat)));
                }
                format!("latest {}", words.join(" and "))
            }
            // billing
            2 => {
                let mut counts = Vec::new();
                for word in ["overdue", "failed"] {
                    let n = count_of(&t.unpaid_invoices, word);
                    if n > 0 {
                        counts.push(format!("{n} {word}"));
                    }
                }
                format!("invoices unpaid: {}", counts.join(" and "))
            }
            // integrations
            3 => {
                let mut broken: Vec<&String> = t
                    .integrations
                    .iter()
                    .filter(|(_, v)| *v != "connected")
                    .map(|(k, _)| k)
                    .collect();
                broken.sort();
                let mut listed = broken
                    .iter()
                    .take(3)
                    .map(|k| format!("{k} ({})", t.integrations[*k]))
                    .collect::<Vec<_>>()
                    .join(", ");
                if broken.len() > 3 {
                    listed += &format!(" and {} more", broken.len() - 3);
                }
                let held = counted(Val::Int(t.integrations.len() as i64), "integration", None);
                format!("{} of {held} not connected: {listed}", broken.len())
            }
            // onboarding
            _ => {
                let mut text = format!(
                    "onboarding {} of {} steps done",
                    num0(value),
                    p.expected_steps.len()
                );
                let since = match t.last_progress {
                    Some(last) if last != 0 => last, // Python's `or`: 0 counts as missing
                    _ => now,
                };
                let idle = now - since;
                if idle > self.stall_after {
                    text += &format!(
                        ", stalled: no progress for {} h",
                        floor_div(idle, MS_PER_HOUR)
                    );
                }
                text
            }
        }
    }
}

/// f"{value:.0f}" for a measure's value.
fn num0(value: Val) -> String {
    match value {
        Val::Int(n) => n.to_string(),
        Val::Float(x) => f0(x),
    }
}

/// How many keys of `map` hold `value` (open P1s, overdue invoices, ...).
fn count_of(map: &HashMap<String, String>, value: &str) -> usize {
    map.values().filter(|held| *held == value).count()
}

/// '1 session', '3 sessions' (as vigil.base.words.counted says it).
fn counted(value: Val, singular: &str, plural: Option<&str>) -> String {
    let word = if value.as_f64() == 1.0 {
        singular.to_string()
    } else {
        plural
            .map(str::to_string)
            .unwrap_or_else(|| format!("{singular}s"))
    };
    format!("{} {word}", num0(value))
}
