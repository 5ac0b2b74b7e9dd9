//! Health components declared in the settings (`[health.components.NAME]`): a declared
//! measure, scaled to a share of the component's weight, and the words for the points
//! it loses. vigil/engine/measures.py checks the declarations and hands them over.

use pyo3::prelude::*;

use crate::declared::Declared;
use crate::fmt::{g, py_max, py_min, py_round};
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
    pub weight: f64,
    measure: usize,
    scale: Scale,
    against: Against,
    /// The component has data only while this measure has a value.
    when: Option<usize>,
    /// The reason, as text and the places its value goes (true).
    reason: Vec<(String, bool)>,
}

/// A component's declaration as vigil.engine.measures.compiled gives it: (name, digest,
/// weight, measure, scale ("full_at", "zero_at" or "equals"), its number, its text,
/// per measure, whether against the window before, min_previous, when measure, reason).
pub type ComponentTuple = (
    String,
    String,
    f64,
    usize,
    String,
    f64,
    Option<String>,
    Option<usize>,
    bool,
    f64,
    Option<usize>,
    Vec<(String, bool)>,
);

impl Component {
    pub fn new(declared: &mut Declared, spec: ComponentTuple) -> PyResult<Self> {
        let (name, digest, weight, measure, scale, at, equals, per, previous, least, when, reason) =
            spec;
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
            weight,
            measure,
            scale,
            against,
            when,
            reason,
        })
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
        Some((Val::Float(py_round(value, 4)), share))
    }

    /// The reason for the points it loses, with its value said.
    pub fn explain(&self, value: Val) -> String {
        self.reason
            .iter()
            .map(|(text, is_value)| {
                if *is_value {
                    g(value.as_f64())
                } else {
                    text.clone()
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_says_the_value_as_python_would() {
        let component = Component {
            name: "recency".into(),
            digest: String::new(),
            weight: 10.0,
            measure: 0,
            scale: Scale::ZeroAt(14.0),
            against: Against::Itself,
            when: None,
            reason: vec![
                (String::new(), true),
                (" days since the last session (none from 14)".into(), false),
            ],
        };
        assert_eq!(
            component.explain(Val::Float(3.5)),
            "3.5 days since the last session (none from 14)"
        );
        assert_eq!(
            component.explain(Val::Float(12.0)),
            "12 days since the last session (none from 14)"
        );
    }
}
