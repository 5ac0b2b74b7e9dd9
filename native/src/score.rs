//! The health score and its words: the components' measures, weights and reasons.

use rustc_hash::FxHashMap as HashMap;

use crate::components::Component;
use crate::declared::Declared;
use crate::fmt::f0;
use crate::tenant::{Measure, Tenant};

/// The most components (a bit each in a tenant's `stale`;
/// vigil.config.settings.MAX_COMPONENTS).
pub const MAX_COMPONENTS: usize = 32;

/// Every component's measure, in the order of health records.
pub type AllMeasures = [Measure; MAX_COMPONENTS];

pub struct Scorer {
    /// The components, in the order of health records.
    pub components: Vec<Component>,
    // The components' names as the reasons say them ("login activity").
    spoken: Vec<String>,
    // The most reason lines kept worded (vigil.engine.shard.MEMO_SIZE): emptied when full.
    pub memo_size: usize,
    spread: HashMap<u32, Option<[f64; MAX_COMPONENTS]>>,
    lines: HashMap<(usize, u64, u64, u64), String>,
}

/// What a component measures while the tenant is silent: no more than it held. Time
/// alone (errors leaving a window, a window before emptying) is no evidence that an
/// account got better, so silence never raises a score; its next event measures afresh.
fn no_better(fresh: Measure, held: Measure) -> Measure {
    match (fresh, held) {
        (Some(f), Some(h)) if f.1 > h.1 => held,
        (None, Some(_)) | (Some(_), None) => held,
        _ => fresh,
    }
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
    pub fn new(components: Vec<Component>, memo_size: usize) -> Self {
        let spoken = components
            .iter()
            .map(|c| c.name.replace('_', " "))
            .collect();
        Scorer {
            components,
            spoken,
            memo_size,
            spread: HashMap::default(),
            lines: HashMap::default(),
        }
    }

    pub fn cached_lines(&self) -> usize {
        self.lines.len()
    }

    /// How many components there are.
    pub fn total(&self) -> usize {
        self.components.len()
    }

    /// Every component's stale bit.
    pub fn all_bits(&self) -> u32 {
        self.components.iter().fold(0, |bits, c| bits | c.bit)
    }

    /// The stale bits of the components that read each of `measures` declared
    /// measures, by measure.
    pub fn readers(&self, measures: usize) -> Vec<u32> {
        let mut bits = vec![0; measures];
        for component in &self.components {
            for measure in component.reads() {
                bits[measure] |= component.bit;
            }
        }
        bits
    }

    /// Every component's measure as the tenant holds it.
    pub fn all_measures(&self, t: &Tenant) -> AllMeasures {
        let mut all = [None; MAX_COMPONENTS];
        all[..t.components.len()].copy_from_slice(&t.components);
        all
    }

    /// The score alone, None when no measure moved (or none has data). `declared` and
    /// the tenant's `measured` are what the components read. Without `measuring` (the
    /// first step after a restore re-weighs every tenant) only the components declared
    /// anew are measured: the others wait for the step the running shard measured them
    /// at, so that a resumed run measures what one never stopped did.
    pub fn rescore(
        &mut self,
        t: &mut Tenant,
        declared: &Declared,
        now: i64,
        reweigh: bool,
        measuring: bool,
    ) -> Option<f64> {
        let mut changed = reweigh || t.score.is_none();
        let silent = !std::mem::take(&mut t.heard) && t.score.is_some();
        let stale = std::mem::take(&mut t.stale);
        let afresh = std::mem::take(&mut t.afresh);
        let due = if measuring { stale } else { stale & afresh };
        t.stale = stale & !due;
        for (own, component) in self.components.iter().enumerate() {
            if due & component.bit == 0 {
                continue;
            }
            let mut fresh = component.measure(declared, &t.measured, now);
            if silent && afresh & component.bit == 0 {
                let held = no_better(fresh, t.components[own]);
                if held != fresh {
                    t.stale |= component.bit; // measured again, afresh once heard
                }
                fresh = held;
            }
            match (fresh, std::mem::replace(&mut t.components[own], fresh)) {
                (Some(f), Some(o)) => changed |= f.1 != o.1,
                (None, None) => {}
                _ => changed = true,
            }
        }
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
                total += self.components[index].weight;
            }
        }
        let spread = if total > 0.0 {
            let scale = 100.0 / total;
            let mut out = [0.0; MAX_COMPONENTS];
            for (index, weight) in out.iter_mut().enumerate().take(self.total()) {
                if present >> index & 1 == 1 {
                    *weight = self.components[index].weight * scale;
                }
            }
            Some(out)
        } else {
            None
        };
        self.spread.insert(present, spread);
        spread
    }

    /// The reasons: the biggest loss of points first, then what had no data.
    pub fn reasons(
        &mut self,
        t: &Tenant,
        declared: &Declared,
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
            let component = &self.components[index];
            let idle = !component.active(declared, &t.measured, now);
            // Held to no points while idle, it says so whatever its value.
            let key = if idle {
                (index, u64::MAX - 1, 0, bits(weight))
            } else {
                measure_key(index, measures[index], weight)
            };
            let line = match self.lines.get(&key) {
                Some(line) => line.clone(),
                None => {
                    let said = component.explain(value, declared, &t.measured, now);
                    let line = format!("{said} (-{} pts)", f0(lost));
                    if component.words_from_value() {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::Val;

    #[test]
    fn silence_keeps_what_was_held_unless_it_is_worse() {
        let held = Some((Val::Int(10), 0.5));
        assert_eq!(no_better(Some((Val::Int(0), 1.0)), held), held);
        assert_eq!(no_better(None, held), held);
        assert_eq!(no_better(Some((Val::Int(1), 1.0)), None), None);
        let worse = Some((Val::Int(20), 0.2));
        assert_eq!(no_better(worse, held), worse);
    }
}
