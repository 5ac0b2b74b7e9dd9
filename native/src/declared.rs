//! The measures and signals declared in the settings, as the core runs them: which
//! measures an event feeds, and which signals a tenant's measures raise. vigil/measures.py
//! checks the declarations and hands them over (`compiled`).

use std::collections::VecDeque;

use rustc_hash::FxHashMap as HashMap;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::measures::{Kind, Reading, Spec, State, Touch};

/// Where a measure reads its field: the event's user, or one of its attributes.
enum FieldRef {
    UserId,
    Attr(String),
}

struct Measure {
    name: String,
    /// A fingerprint of the declaration: a saved state of another one starts afresh.
    digest: String,
    spec: Spec,
    field: Option<FieldRef>,
    filter: Vec<(String, String)>,
}

/// A signal raised when a measure (or its ratio to another) crosses a bound.
struct Condition {
    measure: usize,
    per: Option<usize>,
    above: Option<f64>,
    below: Option<f64>,
}

/// A declared signal's condition as vigil.measures.compiled gives it: (measure, per
/// measure, above, below).
type ConditionTuple = (usize, Option<usize>, Option<f64>, Option<f64>);

/// A declared signal a tenant raised: (signal, measure's value, the `per` measure's).
pub type Raised = (usize, f64, Option<f64>);

#[derive(Default)]
pub struct Declared {
    measures: Vec<Measure>,
    conditions: Vec<Condition>,
    /// Event type -> the measures it feeds (false) or closes items of (true).
    by_type: HashMap<String, Vec<(usize, bool)>>,
}

fn kind_of(name: &str) -> PyResult<Kind> {
    Ok(match name {
        "count" => Kind::Count,
        "sum" => Kind::Sum,
        "distinct" => Kind::Distinct,
        "top_share" => Kind::TopShare,
        "latest" => Kind::Latest,
        "open_items" => Kind::OpenItems,
        "days_since" => Kind::DaysSince,
        other => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "no measure kind {other:?}"
            )))
        }
    })
}

/// A measure's declaration as vigil.measures.compiled gives it.
type MeasureTuple = (
    String,
    String,
    String,
    Vec<String>,
    Vec<String>,
    Option<String>,
    Vec<(String, String)>,
    i64,
    i64,
);

impl Declared {
    pub fn new(measures: Vec<MeasureTuple>, conditions: Vec<ConditionTuple>) -> PyResult<Self> {
        let mut declared = Declared::default();
        for (index, (name, digest, kind, types, closed_by, field, filter, window, bucket)) in
            measures.into_iter().enumerate()
        {
            let fed = types.into_iter().map(|kind| (kind, false));
            for (kind, closes) in fed.chain(closed_by.into_iter().map(|kind| (kind, true))) {
                declared
                    .by_type
                    .entry(kind)
                    .or_default()
                    .push((index, closes));
            }
            let field = field.map(|f| match f.strip_prefix("attrs.") {
                Some(attr) => FieldRef::Attr(attr.to_string()),
                None => FieldRef::UserId,
            });
            declared.measures.push(Measure {
                name,
                digest,
                spec: Spec {
                    kind: kind_of(&kind)?,
                    window,
                    bucket,
                },
                field,
                filter,
            });
        }
        declared.conditions = conditions
            .into_iter()
            .map(|(measure, per, above, below)| Condition {
                measure,
                per,
                above,
                below,
            })
            .collect();
        Ok(declared)
    }

    pub fn is_empty(&self) -> bool {
        self.measures.is_empty()
    }

    /// A tenant's measures, none fed yet.
    pub fn fresh(&self) -> Vec<State> {
        self.measures
            .iter()
            .map(|m| State::new(m.spec.kind))
            .collect()
    }

    /// Fold an event (a vigil.events.Event) into the measures its type feeds; the
    /// names of the measures that refused a new key.
    pub fn apply(
        &self,
        states: &mut [State],
        kind: &str,
        ts: i64,
        event: &Bound<'_, PyTuple>,
        max_keys: usize,
    ) -> PyResult<Vec<&str>> {
        let mut refused = Vec::new();
        let Some(fed) = self.by_type.get(kind) else {
            return Ok(refused);
        };
        let attrs = event.get_item(5)?;
        for &(index, closes) in fed {
            let measure = &self.measures[index];
            if !closes && !matches(&attrs, &measure.filter)? {
                continue;
            }
            let reading = match &measure.field {
                None => None,
                Some(FieldRef::UserId) => reading(&event.get_item(4)?)?,
                Some(FieldRef::Attr(name)) => {
                    let value = attrs.call_method1(pyo3::intern!(event.py(), "get"), (name,))?;
                    reading(&value)?
                }
            };
            let touch = match (closes, reading) {
                (true, Some(key)) => Touch::Close(key),
                (true, None) => continue,
                (false, reading) => Touch::Feed(reading),
            };
            if !states[index].apply(&measure.spec, ts, touch, max_keys) {
                refused.push(measure.name.as_str());
            }
        }
        Ok(refused)
    }

    pub fn prune(&self, states: &mut [State], now: i64) {
        for (state, measure) in states.iter_mut().zip(&self.measures) {
            state.prune(&measure.spec, now);
        }
    }

    /// The signals whose bound the tenant's measures cross at `now` and did not at its
    /// last evaluation (`active`, a bit per signal, updated): a signal is raised once
    /// per crossing.
    pub fn evaluate(&self, states: &[State], active: &mut u64, now: i64) -> Vec<Raised> {
        let mut raised = Vec::new();
        for (index, condition) in self.conditions.iter().enumerate() {
            let value =
                states[condition.measure].value(&self.measures[condition.measure].spec, now);
            let per = condition
                .per
                .map(|per| states[per].value(&self.measures[per].spec, now));
            let compared = match (value, per) {
                (Some(value), None) => Some(value),
                (Some(value), Some(Some(per))) if per > 0.0 => Some(value / per),
                _ => None,
            };
            let crossed = compared.is_some_and(|x| {
                condition.above.is_none_or(|bound| x > bound)
                    && condition.below.is_none_or(|bound| x < bound)
            });
            let bit = 1u64 << index;
            if crossed && *active & bit == 0 {
                raised.push((index, value.expect("crossed"), per.flatten()));
            }
            if crossed {
                *active |= bit;
            } else {
                *active &= !bit;
            }
        }
        raised
    }

    /// The measures as a snapshot keeps them: name -> (digest, state).
    pub fn to_py<'py>(&self, py: Python<'py>, states: &[State]) -> PyResult<Bound<'py, PyDict>> {
        let saved = PyDict::new(py);
        for (state, measure) in states.iter().zip(&self.measures) {
            saved.set_item(&measure.name, (&measure.digest, state_to_py(py, state)?))?;
        }
        Ok(saved)
    }

    /// The measures of a saved tenant: those saved under this declaration, the others
    /// afresh (declared since, or changed).
    pub fn restored(&self, saved: Option<Bound<'_, PyAny>>) -> PyResult<Vec<State>> {
        let mut states = self.fresh();
        let Some(saved) = saved else {
            return Ok(states);
        };
        let saved = saved.cast_into::<PyDict>()?;
        for (state, measure) in states.iter_mut().zip(&self.measures) {
            if let Some(entry) = saved.get_item(&measure.name)? {
                let (digest, plain): (String, Bound<'_, PyAny>) = entry.extract()?;
                if digest == measure.digest {
                    *state = state_from_py(measure.spec.kind, &plain)?;
                }
            }
        }
        Ok(states)
    }
}

fn matches(attrs: &Bound<'_, PyAny>, filter: &[(String, String)]) -> PyResult<bool> {
    for (attr, wanted) in filter {
        let value = attrs.call_method1(pyo3::intern!(attrs.py(), "get"), (attr,))?;
        match value.cast::<PyString>() {
            Ok(text) if text.to_str()? == wanted => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

fn reading(value: &Bound<'_, PyAny>) -> PyResult<Option<Reading>> {
    Ok(if let Ok(text) = value.cast::<PyString>() {
        Some(Reading::Text(text.to_str()?.into()))
    } else if value.is_instance_of::<PyInt>() || value.is_instance_of::<PyFloat>() {
        if value.is_instance_of::<pyo3::types::PyBool>() {
            None
        } else {
            Some(Reading::Num(value.extract()?))
        }
    } else {
        None
    })
}

fn reading_to_py<'py>(py: Python<'py>, reading: Option<&Reading>) -> PyResult<Bound<'py, PyAny>> {
    Ok(match reading {
        None => py.None().into_bound(py),
        Some(Reading::Num(x)) => PyFloat::new(py, *x).into_any(),
        Some(Reading::Text(text)) => PyString::new(py, text).into_any(),
    })
}

fn state_to_py<'py>(py: Python<'py>, state: &State) -> PyResult<Bound<'py, PyAny>> {
    Ok(match state {
        State::Buckets(buckets) => PyList::new(py, buckets.iter().copied())?.into_any(),
        State::Keys(keys) => {
            let dict = PyDict::new(py);
            for (key, at) in keys {
                dict.set_item(&**key, at)?;
            }
            dict.into_any()
        }
        State::Shares(shares) => {
            let dict = PyDict::new(py);
            for (key, counts) in shares {
                dict.set_item(&**key, PyList::new(py, counts.iter().copied())?)?;
            }
            dict.into_any()
        }
        State::Latest(latest, previous) => (
            reading_to_py(py, latest.as_ref())?,
            reading_to_py(py, previous.as_ref())?,
        )
            .into_pyobject(py)?
            .into_any(),
        State::Last(last) => last.into_pyobject(py)?.into_any(),
    })
}

fn state_from_py(kind: Kind, plain: &Bound<'_, PyAny>) -> PyResult<State> {
    let keys = |plain: &Bound<'_, PyAny>| -> PyResult<HashMap<Box<str>, i64>> {
        let keys: HashMap<String, i64> = plain.extract()?;
        Ok(keys
            .into_iter()
            .map(|(k, v)| (k.into_boxed_str(), v))
            .collect())
    };
    Ok(match State::new(kind) {
        State::Buckets(_) => {
            let buckets: Vec<(i64, f64)> = plain.extract()?;
            State::Buckets(VecDeque::from(buckets))
        }
        State::Keys(_) => State::Keys(keys(plain)?),
        State::Shares(_) => {
            let shares: HashMap<String, Vec<(i64, f64)>> = plain.extract()?;
            State::Shares(
                shares
                    .into_iter()
                    .map(|(k, v)| (k.into_boxed_str(), VecDeque::from(v)))
                    .collect(),
            )
        }
        State::Latest(..) => {
            let (latest, previous): (Bound<'_, PyAny>, Bound<'_, PyAny>) = plain.extract()?;
            State::Latest(reading(&latest)?, reading(&previous)?)
        }
        State::Last(_) => State::Last(plain.extract()?),
    })
}
