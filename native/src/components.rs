//! Health components declared in the settings (`[health.components.NAME]`): a declared
//! measure (or the mean of several), scaled to a share of the component's weight, and
//! the words for the points it loses. vigil/engine/measures.py checks the declarations
//! and hands them over.

use pyo3::prelude::*;

use crate::declared::Declared;
use crate::fmt::{f0, floor_div, g, py_max, py_min, py_round};
use crate::measures::{Reading, State};
use crate::tenant::{Measure, Val, MS_PER_HOUR};

/// How the value becomes a share of the weight.
enum Scale {
    /// Full points at this value and above, none at 0.
    FullAt(f64),
    /// Full points at 0, none from this value on.
    ZeroAt(f64),
    /// Full points when the latest text is this one, else none; of states, the share of
    /// keys in this state.
    Equals(String),
}

/// What the measure's value is taken against before it is scaled.
enum Against {
    Itself,
    /// The ratio to another measure.
    Per(usize),
    /// The ratio to the window before, or to this much when that held less.
    PreviousWindow(f64),
}

/// One measure of a component that is the mean of several: its value from `from` (no
/// points) to `to` (full points), and how the reason says it.
struct Part {
    measure: usize,
    from: f64,
    to: f64,
    says: Vec<Piece>,
}

pub struct Component {
    pub name: String,
    /// A fingerprint of the declaration: a value saved under another one is dropped.
    pub digest: String,
    /// Its bit in a tenant's `stale`.
    pub bit: u32,
    pub weight: f64,
    /// Its measure; None for the mean of `parts`.
    measure: Option<usize>,
    scale: Scale,
    against: Against,
    /// Of a states measure: what each key in a state counts for (others count 1).
    weights: Vec<(String, f64)>,
    parts: Vec<Part>,
    /// The mean of the parts is said out of this.
    out_of: f64,
    /// Of a process: its share times the factor once it made no progress for this long.
    stalled: Option<(i64, f64)>,
    /// The component has data only while this measure has a value.
    when: Option<usize>,
    /// It earns points only while this measure is above 0 (points for an absence, such as
    /// no errors, are for tenants otherwise active), and says `idle` then.
    earned_while: Option<usize>,
    idle: String,
    /// Its value counts things: said as a whole number.
    whole: bool,
    /// The reason, as text and the places its value goes.
    reason: Vec<Piece>,
}

/// A piece of a reason.
enum Piece {
    Text(String),
    /// The value: a whole number, or as Python's `:g` says it.
    Value,
    /// The value and the word for it: "1 session", "3 sessions".
    Counted(String, String),
    /// The value as a percentage, and its percentage below 1 ("down 30%").
    Pct,
    DownPct,
    /// Of states: the keys held, bare or counted ("1 integration").
    Held,
    HeldCounted(String, String),
    /// Of states: the keys in this state.
    Count(String),
    /// Of states: how many keys are in each state ("1 overdue and 2 failed").
    States,
    /// Of states compared with `equals`: the keys in another state, how many, and which
    /// ("crm (error), erp (disconnected)").
    Others,
    Keys,
    /// Of a mean: each part with data, as it says itself.
    Parts,
    /// Of a process: ", stalled: no progress for N h" once stalled.
    Stalled,
}

/// A part of a mean as declared: (measure, from, to, the reason's pieces for it).
type PartSpec = (usize, f64, f64, Vec<(String, String)>);

/// A component's declaration as vigil.engine.measures.compiled gives it
/// (vigil.engine.measures.ComponentSpec).
#[derive(FromPyObject)]
pub struct ComponentSpec {
    name: String,
    digest: String,
    bit: u32,
    weight: f64,
    measure: Option<usize>,
    /// "full_at", "zero_at", "equals" or "mean".
    scale: String,
    at: f64,
    equals: Option<String>,
    per: Option<usize>,
    previous_window: bool,
    min_previous: f64,
    weights: Vec<(String, f64)>,
    parts: Vec<PartSpec>,
    out_of: f64,
    stalled: Option<(i64, f64)>,
    when: Option<usize>,
    earned_while: Option<usize>,
    idle: String,
    whole: bool,
    reason: Vec<(String, String)>,
}

fn pieces(name: &str, spec: Vec<(String, String)>) -> PyResult<Vec<Piece>> {
    let pair = |text: &str| match text.split_once('|') {
        Some((one, many)) => (one.to_string(), many.to_string()),
        None => (text.to_string(), text.to_string()),
    };
    spec.into_iter()
        .map(|(what, text)| {
            Ok(match what.as_str() {
                "text" => Piece::Text(text),
                "value" => Piece::Value,
                "counted" => {
                    let (one, many) = pair(&text);
                    Piece::Counted(one, many)
                }
                "pct" => Piece::Pct,
                "down_pct" => Piece::DownPct,
                "held" => Piece::Held,
                "held_counted" => {
                    let (one, many) = pair(&text);
                    Piece::HeldCounted(one, many)
                }
                "count" => Piece::Count(text),
                "states" => Piece::States,
                "others" => Piece::Others,
                "keys" => Piece::Keys,
                "parts" => Piece::Parts,
                "stalled" => Piece::Stalled,
                other => {
                    return Err(pyo3::exceptions::PyValueError::new_err(format!(
                        "{name}: no reason piece {other:?}"
                    )))
                }
            })
        })
        .collect()
}

impl Component {
    pub fn new(declared: &mut Declared, spec: ComponentSpec) -> PyResult<Self> {
        let name = spec.name;
        let reason = pieces(&name, spec.reason)?;
        let scale = match (spec.scale.as_str(), spec.equals) {
            ("full_at", _) => Scale::FullAt(spec.at),
            ("zero_at", _) => Scale::ZeroAt(spec.at),
            ("equals", Some(text)) => Scale::Equals(text),
            ("mean", _) => Scale::FullAt(1.0),
            (other, _) => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "{name}: no scale {other:?}"
                )))
            }
        };
        let against = match (spec.per, spec.previous_window, spec.measure) {
            (Some(per), _, _) => Against::Per(per),
            (None, true, Some(measure)) => {
                declared.keep_previous_window(measure);
                Against::PreviousWindow(spec.min_previous)
            }
            _ => Against::Itself,
        };
        if let (Some((after, _)), Some(measure)) = (spec.stalled, spec.measure) {
            declared.watch_stall(measure, after);
        }
        let parts = spec
            .parts
            .into_iter()
            .map(|(measure, from, to, says)| {
                Ok(Part {
                    measure,
                    from,
                    to,
                    says: pieces(&name, says)?,
                })
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok(Component {
            name,
            digest: spec.digest,
            bit: 1 << spec.bit,
            weight: spec.weight,
            measure: spec.measure,
            scale,
            against,
            weights: spec.weights,
            parts,
            out_of: spec.out_of,
            stalled: spec.stalled,
            when: spec.when,
            earned_while: spec.earned_while,
            idle: spec.idle,
            whole: spec.whole,
            reason,
        })
    }

    /// The declared measures it reads.
    pub fn reads(&self) -> impl Iterator<Item = usize> + '_ {
        let per = match self.against {
            Against::Per(per) => Some(per),
            _ => None,
        };
        [self.measure, per, self.when, self.earned_while]
            .into_iter()
            .flatten()
            .chain(self.parts.iter().map(|part| part.measure))
    }

    /// Whether its words follow from its value alone (they can be kept and reused; while
    /// earned_while holds it to no points, from that alone).
    pub fn words_from_value(&self) -> bool {
        !self.reason.iter().any(|piece| {
            matches!(
                piece,
                Piece::Held
                    | Piece::HeldCounted(..)
                    | Piece::Count(_)
                    | Piece::States
                    | Piece::Others
                    | Piece::Keys
                    | Piece::Parts
                    | Piece::Stalled
            )
        })
    }

    /// (the value, the share of the weight it earns) at `now`, or None: no data.
    pub fn measure(&self, declared: &Declared, states: &[State], now: i64) -> Measure {
        if let Some(when) = self.when {
            declared.reading(states, when, now)?;
        }
        let Some(measure) = self.measure else {
            return self.mean(declared, states, now);
        };
        if let Some(held) = states[measure].held() {
            return self.of_states(held);
        }
        let reading = declared.reading(states, measure, now)?;
        let value = match (&self.scale, reading) {
            (Scale::Equals(wanted), Reading::Text(text)) => {
                let share = if *text == **wanted { 1.0 } else { 0.0 };
                return Some((Val::Float(share), share));
            }
            (Scale::Equals(_), Reading::Num(_)) => return None,
            (_, Reading::Text(_)) => return None,
            (_, Reading::Num(value)) => value,
        };
        let value = match self.against {
            Against::Itself => value,
            Against::Per(per) => match declared.reading(states, per, now)? {
                Reading::Num(per) if per > 0.0 => value / per,
                _ => return None,
            },
            Against::PreviousWindow(least) => {
                // A window before that held little (or nothing: the tenant stopped) is
                // taken as `least`, so that stopping scores zero rather than no data.
                let before = declared.previous_window(states, measure, now)?.max(least);
                if before <= 0.0 {
                    return None;
                }
                value / before
            }
        };
        let mut share = self.scaled(value);
        if self.idle_hours(states, now).is_some() {
            share *= self.stalled.map_or(1.0, |(_, factor)| factor);
        }
        if !self.active(declared, states, now) {
            share = 0.0;
        }
        let said = if self.whole && value.fract() == 0.0 {
            Val::Int(value as i64)
        } else {
            Val::Float(py_round(value, 3))
        };
        Some((said, share))
    }

    fn scaled(&self, value: f64) -> f64 {
        match self.scale {
            Scale::FullAt(full) => py_min(1.0, value / full),
            Scale::ZeroAt(zero) => py_max(0.0, 1.0 - value / zero),
            Scale::Equals(_) => unreachable!("a text's share is 1 or 0"),
        }
    }

    /// Of a states measure: the share of keys in the `equals` state, or the keys held
    /// (weighted) scaled; said as how many keys are in that state, or held.
    fn of_states(&self, held: &rustc_hash::FxHashMap<Box<str>, Reading>) -> Measure {
        if let Scale::Equals(wanted) = &self.scale {
            if held.is_empty() {
                return None;
            }
            let in_it = in_state(held, wanted);
            return Some((Val::Int(in_it as i64), in_it as f64 / held.len() as f64));
        }
        // By state, in the order given, so that the sum is the same however keys came.
        let mut amount = 0.0;
        let mut listed = 0;
        for (state, weight) in &self.weights {
            let n = in_state(held, state);
            amount += n as f64 * weight;
            listed += n;
        }
        amount += (held.len() - listed) as f64;
        Some((Val::Int(held.len() as i64), self.scaled(amount)))
    }

    /// The mean of the parts with data, each from its `from` to its `to`.
    fn mean(&self, declared: &Declared, states: &[State], now: i64) -> Measure {
        let mut sum = 0.0;
        let mut n = 0;
        for part in &self.parts {
            if let Some(Reading::Num(value)) = declared.reading(states, part.measure, now) {
                sum += ((value - part.from) / (part.to - part.from)).clamp(0.0, 1.0);
                n += 1;
            }
        }
        if n == 0 {
            return None;
        }
        let share = sum / n as f64;
        Some((Val::Float(py_round(share * self.out_of, 2)), share))
    }

    /// Whether it may earn points: always, or while its `earned_while` measure is above 0.
    pub fn active(&self, declared: &Declared, states: &[State], now: i64) -> bool {
        self.earned_while.is_none_or(|measure| {
            matches!(declared.reading(states, measure, now), Some(Reading::Num(n)) if n > 0.0)
        })
    }

    /// Of a process held stalled: the whole hours since its last progress.
    fn idle_hours(&self, states: &[State], now: i64) -> Option<i64> {
        let (after, _) = self.stalled?;
        let last = states[self.measure?].open_process()?.last_progress?;
        let idle = now - last;
        (idle > after).then(|| floor_div(idle, MS_PER_HOUR))
    }

    /// The reason for the points it loses, with its value said.
    pub fn explain(&self, value: Val, declared: &Declared, states: &[State], now: i64) -> String {
        if !self.active(declared, states, now) {
            return self.idle.clone();
        }
        let held = self.measure.and_then(|m| states[m].held());
        let wanted = match &self.scale {
            Scale::Equals(text) => Some(text.as_str()),
            _ => None,
        };
        let mut said = String::new();
        for piece in &self.reason {
            match piece {
                Piece::Held => said += &held.map_or(0, |h| h.len()).to_string(),
                Piece::HeldCounted(one, many) => {
                    let n = held.map_or(0, |h| h.len());
                    said += &format!("{n} {}", if n == 1 { one } else { many });
                }
                Piece::Count(state) => said += &held.map_or(0, |h| in_state(h, state)).to_string(),
                Piece::States => said += &self.say_states(held),
                Piece::Others => {
                    let n = held.map_or(0, |h| h.len() - wanted.map_or(0, |w| in_state(h, w)));
                    said += &n.to_string();
                }
                Piece::Keys => said += &say_keys(held, wanted),
                Piece::Parts => said += &self.say_parts(declared, states, now),
                Piece::Stalled => {
                    if let Some(hours) = self.idle_hours(states, now) {
                        said += &format!(", stalled: no progress for {hours} h");
                    }
                }
                other => said += &say_value(other, value),
            }
        }
        said
    }

    /// "1 overdue and 2 failed": the states given weights first, in their order.
    fn say_states(&self, held: Option<&rustc_hash::FxHashMap<Box<str>, Reading>>) -> String {
        let Some(held) = held else {
            return String::new();
        };
        let mut states: Vec<String> = self.weights.iter().map(|(s, _)| s.clone()).collect();
        let mut others: Vec<String> = held
            .values()
            .map(|v| v.key().to_string())
            .filter(|s| !states.contains(s))
            .collect();
        others.sort();
        others.dedup();
        states.extend(others);
        states
            .iter()
            .map(|state| (in_state(held, state), state))
            .filter(|(n, _)| *n > 0)
            .map(|(n, state)| format!("{n} {state}"))
            .collect::<Vec<_>>()
            .join(" and ")
    }

    fn say_parts(&self, declared: &Declared, states: &[State], now: i64) -> String {
        let mut said = Vec::new();
        for part in &self.parts {
            if let Some(Reading::Num(value)) = declared.reading(states, part.measure, now) {
                let words: String = part
                    .says
                    .iter()
                    .map(|piece| say_value(piece, Val::Float(value)))
                    .collect();
                said.push(words);
            }
        }
        said.join(" and ")
    }
}

/// How many keys hold this state.
fn in_state(held: &rustc_hash::FxHashMap<Box<str>, Reading>, state: &str) -> usize {
    held.values()
        .filter(|v| matches!(v, Reading::Text(t) if **t == *state))
        .count()
}

/// "crm (error), erp (disconnected) and 2 more": the keys not in the `wanted` state
/// (all, without one), sorted, three at most.
fn say_keys(
    held: Option<&rustc_hash::FxHashMap<Box<str>, Reading>>,
    wanted: Option<&str>,
) -> String {
    let Some(held) = held else {
        return String::new();
    };
    let mut keys: Vec<(&str, String)> = held
        .iter()
        .map(|(k, v)| (&**k, v.key().to_string()))
        .filter(|(_, v)| wanted != Some(v.as_str()))
        .collect();
    keys.sort();
    let mut said = keys
        .iter()
        .take(3)
        .map(|(k, v)| format!("{k} ({v})"))
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > 3 {
        said += &format!(" and {} more", keys.len() - 3);
    }
    said
}

/// A piece that says the value (or text) alone.
fn say_value(piece: &Piece, value: Val) -> String {
    let number = match value {
        Val::Int(n) => n.to_string(),
        Val::Float(x) => g(x),
    };
    let x = value.as_f64();
    match piece {
        Piece::Text(text) => text.clone(),
        Piece::Value => number,
        Piece::Counted(one, many) => format!("{number} {}", if x == 1.0 { one } else { many }),
        Piece::Pct => f0(100.0 * x),
        Piece::DownPct => f0(100.0 * (1.0 - x)),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_said_as_python_would() {
        let said = |pieces: &[Piece], value| -> String {
            pieces.iter().map(|p| say_value(p, value)).collect()
        };
        let days = [Piece::Value, Piece::Text(" days (none from 14)".into())];
        assert_eq!(said(&days, Val::Float(3.5)), "3.5 days (none from 14)");
        assert_eq!(said(&days, Val::Float(12.0)), "12 days (none from 14)");
        let sessions = [Piece::Counted("session".into(), "sessions".into())];
        assert_eq!(said(&sessions, Val::Int(1)), "1 session");
        assert_eq!(said(&sessions, Val::Int(3)), "3 sessions");
        let trend = [
            Piece::Text("down ".into()),
            Piece::DownPct,
            Piece::Text("%, at ".into()),
            Piece::Pct,
            Piece::Text("%".into()),
        ];
        assert_eq!(said(&trend, Val::Float(0.079)), "down 92%, at 8%");
    }

    #[test]
    fn keys_in_another_state_are_listed_three_at_most() {
        let held: rustc_hash::FxHashMap<Box<str>, Reading> = ["a", "b", "c", "d", "e"]
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let state = if i == 0 { "connected" } else { "error" };
                ((*k).into(), Reading::Text(state.into()))
            })
            .collect();
        assert_eq!(
            say_keys(Some(&held), Some("connected")),
            "b (error), c (error), d (error) and 1 more"
        );
        assert_eq!(in_state(&held, "error"), 4);
    }
}
