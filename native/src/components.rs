//! Health components declared in the settings (`[health.components.NAME]`): a declared
//! measure, scaled to a share of the component's weight, and the words for the points
//! it loses. vigil/engine/measures.py checks the declarations and hands them over.

use pyo3::prelude::*;

use crate::declared::Declared;
use crate::fmt::{f0, g, py_max, py_min, py_round};
use crate::measures::{Reading, State};
use crate::tenant::{Measure, Val};

/// How the value becomes a share of the weight.
enum Scale {
    /// Full points at this value and above, none at 0.
    FullAt(f64),
    /// Full points at 0, none from this value on.
    ZeroAt(f64),
    /// Full points when the latest text is this one, else none.
    Equals(String),
}

/// What the measure's value is taken against before it is scaled.
enum Against {
    Itself,
    /// The ratio to another measure.
    Per(usize),
    /// The ratio to the window before, when that held at least this much.
    PreviousWindow(f64),
}

pub struct Component {
    pub name: String,
    /// A fingerprint of the declaration: a value saved under another one is dropped.
    pub digest: String,
    /// Its bit in a tenant's `stale`: a built-in component's, when declared in its place.
    pub bit: u32,
    pub weight: f64,
    measure: usize,
    scale: Scale,
    against: Against,
    /// The component has data only while this measure has a value.
    when: Option<usize>,
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
}

/// A component's declaration as vigil.engine.measures.compiled gives it: (name, digest,
/// its stale bit's place, weight, measure, (scale: "full_at", "zero_at" or "equals", its
/// number, its text),
/// (per measure, whether against the window before, min_previous), when measure,
/// whether it counts, reason pieces (what, text)).
pub type ComponentTuple = (
    String,
    String,
    u32,
    f64,
    usize,
    (String, f64, Option<String>),
    (Option<usize>, bool, f64),
    Option<usize>,
    bool,
    Vec<(String, String)>,
);

impl Component {
    pub fn new(declared: &mut Declared, spec: ComponentTuple) -> PyResult<Self> {
        let (
            name,
            digest,
            bit,
            weight,
            measure,
            (scale, at, equals),
            (per, previous, least),
            when,
            whole,
            pieces,
        ) = spec;
        let reason = pieces
            .into_iter()
            .map(|(what, text)| {
                Ok(match what.as_str() {
                    "text" => Piece::Text(text),
                    "value" => Piece::Value,
                    "pct" => Piece::Pct,
                    "down_pct" => Piece::DownPct,
                    "counted" => match text.split_once('|') {
                        Some((one, many)) => Piece::Counted(one.into(), many.into()),
                        None => Piece::Counted(text.clone(), text),
                    },
                    other => {
                        return Err(pyo3::exceptions::PyValueError::new_err(format!(
                            "{name}: no reason piece {other:?}"
                        )))
                    }
                })
            })
            .collect::<PyResult<Vec<_>>>()?;
        let scale = match (scale.as_str(), equals) {
            ("full_at", _) => Scale::FullAt(at),
            ("zero_at", _) => Scale::ZeroAt(at),
            ("equals", Some(text)) => Scale::Equals(text),
            (other, _) => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "{name}: no scale {other:?}"
                )))
            }
        };
        let against = match (per, previous) {
            (Some(per), _) => Against::Per(per),
            (None, true) => {
                declared.keep_previous_window(measure);
                Against::PreviousWindow(least)
            }
            (None, false) => Against::Itself,
        };
        Ok(Component {
            name,
            digest,
            bit: 1 << bit,
            weight,
            measure,
            scale,
            against,
            when,
            whole,
            reason,
        })
    }

    /// The declared measures it reads.
    pub fn reads(&self) -> impl Iterator<Item = usize> {
        let per = match self.against {
            Against::Per(per) => Some(per),
            _ => None,
        };
        [Some(self.measure), per, self.when].into_iter().flatten()
    }

    /// (the value, the share of the weight it earns) at `now`, or None: no data.
    pub fn measure(&self, declared: &Declared, states: &[State], now: i64) -> Measure {
        if let Some(when) = self.when {
            declared.reading(states, when, now)?;
        }
        let reading = declared.reading(states, self.measure, now)?;
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
                let before = declared.previous_window(states, self.measure, now)?;
                if before <= 0.0 || before < least {
                    return None;
                }
                value / before
            }
        };
        let share = match self.scale {
            Scale::FullAt(full) => py_min(1.0, value / full),
            Scale::ZeroAt(zero) => py_max(0.0, 1.0 - value / zero),
            Scale::Equals(_) => unreachable!("answered above"),
        };
        let said = if self.whole && value.fract() == 0.0 {
            Val::Int(value as i64)
        } else {
            Val::Float(py_round(value, 3))
        };
        Some((said, share))
    }

    /// The reason for the points it loses, with its value said.
    pub fn explain(&self, value: Val) -> String {
        let number = match value {
            Val::Int(n) => n.to_string(),
            Val::Float(x) => g(x),
        };
        let x = value.as_f64();
        self.reason
            .iter()
            .map(|piece| match piece {
                Piece::Text(text) => text.clone(),
                Piece::Value => number.clone(),
                Piece::Counted(one, many) => {
                    format!("{number} {}", if x == 1.0 { one } else { many })
                }
                Piece::Pct => f0(100.0 * x),
                Piece::DownPct => f0(100.0 * (1.0 - x)),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_says_the_value_as_python_would() {
        let component = |reason: Vec<Piece>| Component {
            name: "c".into(),
            digest: String::new(),
            bit: 1 << 10,
            weight: 10.0,
            measure: 0,
            scale: Scale::ZeroAt(14.0),
            against: Against::Itself,
            when: None,
            whole: false,
            reason,
        };
        let days = component(vec![
            Piece::Value,
            Piece::Text(" days (none from 14)".into()),
        ]);
        assert_eq!(days.explain(Val::Float(3.5)), "3.5 days (none from 14)");
        assert_eq!(days.explain(Val::Float(12.0)), "12 days (none from 14)");
        let sessions = component(vec![Piece::Counted("session".into(), "sessions".into())]);
        assert_eq!(sessions.explain(Val::Int(1)), "1 session");
        assert_eq!(sessions.explain(Val::Int(3)), "3 sessions");
        let trend = component(vec![
            Piece::Text("down ".into()),
            Piece::DownPct,
            Piece::Text("%, at ".into()),
            Piece::Pct,
            Piece::Text("%".into()),
        ]);
        assert_eq!(trend.explain(Val::Float(0.079)), "down 92%, at 8%");
    }
}
