//! The measures and signals declared in the settings, as the core runs them: which
//! measures an event feeds, and which signals a tenant's measures raise. vigil/engine/measures.py
//! checks the declarations and hands them over (`compiled`).

use std::collections::VecDeque;

use rustc_hash::FxHashMap as HashMap;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::measures::{Kind, Reading, Spec, State, Touch};
use crate::signals::percentile as percentile_of;

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

/// What a declared signal compares its measure with.
enum Versus {
    /// Nothing: the measure's value itself.
    Itself,
    /// Another measure: the ratio of the two.
    Per(usize),
    /// The window before (counts and sums): the ratio of the two, when the window before
    /// holds at least the minimum.
    PreviousWindow(f64),
    /// The value before (latest): the change from it.
    PreviousValue,
    /// A text the latest value must equal.
    Equals(String),
    /// The tenant's own past windows (counts and sums over calendar windows): above
    /// their percentile, once it has `min` of them; `windows` are kept.
    History {
        percentile: f64,
        windows: usize,
        min: usize,
    },
}

/// A signal raised when a measure, against what it is compared with, crosses a bound.
struct Condition {
    measure: usize,
    versus: Versus,
    above: Option<f64>,
    below: Option<f64>,
}

/// A declared signal's condition as vigil.engine.measures.compiled gives it: (measure, versus
/// ("", "per", "previous_window", "previous_value", "history" or "equals"), per
/// measure, minimum of the window before, text to equal, above, below, high_above,
/// high_below, and for a history (percentile, windows kept, fewest to compare with)).
type ConditionTuple = (
    usize,
    String,
    Option<usize>,
    f64,
    Option<String>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<(f64, usize, usize)>,
);

/// What an event feeds one declared measure: its reading (None for kinds without a
/// field), or the key of the item it closes.
pub struct Touched {
    measure: usize,
    touch: Touch,
}

impl Touched {
    /// None for a closing event without the item's key: it closes nothing.
    fn new(measure: usize, closes: bool, reading: Option<Reading>) -> Option<Touched> {
        let touch = match (closes, reading) {
            (true, Some(key)) => Touch::Close(key),
            (true, None) => return None,
            (false, reading) => Touch::Feed(reading),
        };
        Some(Touched { measure, touch })
    }
}

/// The places of the bits set in `bits`, lowest first.
fn set_bits(mut bits: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (bits != 0).then(|| {
            let place = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            place
        })
    })
}

/// Everything an event feeds the declared measures, as a queued event keeps it: the
/// first 64 measures fed without a reading as bits (most events: a session counts, no
/// field is read), so that such an event allocates nothing; the others one by one.
#[derive(Default)]
pub struct Touches {
    bare: u64,
    read: Vec<Touched>,
}

impl Touches {
    fn push(&mut self, touched: Touched) {
        match touched {
            Touched {
                measure,
                touch: Touch::Feed(None),
            } if measure < 64 => self.bare |= 1 << measure,
            other => self.read.push(other),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.bare == 0 && self.read.is_empty()
    }

    /// The measures it feeds or closes items of.
    pub fn measures(&self) -> impl Iterator<Item = usize> + '_ {
        set_bits(self.bare).chain(self.read.iter().map(|t| t.measure))
    }

    fn into_touched(self) -> impl Iterator<Item = Touched> {
        set_bits(self.bare)
            .map(|measure| Touched {
                measure,
                touch: Touch::Feed(None),
            })
            .chain(self.read)
    }

    fn touched(&self) -> impl Iterator<Item = (usize, Option<&Reading>, bool)> + '_ {
        set_bits(self.bare)
            .map(|measure| (measure, None, false))
            .chain(self.read.iter().map(|t| match &t.touch {
                Touch::Feed(reading) => (t.measure, reading.as_ref(), false),
                Touch::Close(key) => (t.measure, Some(key), true),
            }))
    }
}

/// A declared signal a tenant raised: the measure's reading and the one it was compared
/// with (for a history, the percentile's value), and for a history, how many past
/// windows it was compared with and what they held in all.
pub struct Raised {
    pub signal: usize,
    pub measured: Option<Reading>,
    pub other: Option<Reading>,
    pub history: Option<(usize, f64)>,
}

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
        "oldest_open" => Kind::OldestOpen,
        "days_since" => Kind::DaysSince,
        "days_until" => Kind::DaysUntil,
        other => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "no measure kind {other:?}"
            )))
        }
    })
}

/// A measure's declaration as vigil.engine.measures.compiled gives it.
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
    Option<i64>,
);

impl Declared {
    pub fn new(measures: Vec<MeasureTuple>, conditions: Vec<ConditionTuple>) -> PyResult<Self> {
        let mut declared = Declared::default();
        for (
            index,
            (name, digest, kind, types, closed_by, field, filter, window, bucket, calendar),
        ) in measures.into_iter().enumerate()
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
                    windows_kept: 1,
                    calendar,
                },
                field,
                filter,
            });
        }
        for (measure, versus, per, min_previous, equals, above, below, _, _, history) in conditions
        {
            let versus = match (versus.as_str(), per, equals) {
                ("", _, _) => Versus::Itself,
                ("per", Some(per), _) => Versus::Per(per),
                ("previous_window", _, _) => {
                    declared.measures[measure].spec.windows_kept = 2;
                    Versus::PreviousWindow(min_previous)
                }
                ("previous_value", _, _) => Versus::PreviousValue,
                ("history", _, _) => {
                    let (percentile, windows, min) = history.ok_or_else(|| {
                        pyo3::exceptions::PyValueError::new_err("a history without its terms")
                    })?;
                    declared.measures[measure].spec.windows_kept = windows as i64 + 1;
                    Versus::History {
                        percentile,
                        windows,
                        min,
                    }
                }
                ("equals", _, Some(text)) => Versus::Equals(text),
                (other, _, _) => {
                    return Err(pyo3::exceptions::PyValueError::new_err(format!(
                        "no comparison {other:?}"
                    )))
                }
            };
            declared.conditions.push(Condition {
                measure,
                versus,
                above,
                below,
            });
        }
        Ok(declared)
    }

    pub fn is_empty(&self) -> bool {
        self.measures.is_empty()
    }

    /// Whether a calendar window closes at `now`: then every tenant is evaluated, the
    /// silent ones included.
    pub fn closes_at(&self, now: i64) -> bool {
        self.measures.iter().any(|m| m.spec.closes_at(now))
    }

    /// A tenant's measures, none fed yet.
    pub fn fresh(&self) -> Vec<State> {
        self.measures
            .iter()
            .map(|m| State::new(m.spec.kind))
            .collect()
    }

    /// What an event (a vigil.intake.events.Event) of type `kind` feeds the declared measures,
    /// read from it when it is accepted: the event itself is not kept in the queue.
    pub fn touches(&self, kind: &str, event: &Bound<'_, PyTuple>) -> PyResult<Touches> {
        let mut touched = Touches::default();
        let Some(fed) = self.by_type.get(kind) else {
            return Ok(touched);
        };
        // Most measures of most events read nothing of them (a session counts).
        let reads = |&(index, closes): &(usize, bool)| {
            let measure = &self.measures[index];
            closes || measure.field.is_some() || !measure.filter.is_empty()
        };
        if !fed.iter().any(reads) {
            for &(index, _) in fed {
                touched.push(Touched {
                    measure: index,
                    touch: Touch::Feed(None),
                });
            }
            return Ok(touched);
        }
        let attrs = event.get_item(crate::event::ATTRS)?;
        for &(index, closes) in fed {
            let measure = &self.measures[index];
            if !closes && !matches(&attrs, &measure.filter)? {
                continue;
            }
            let reading = match &measure.field {
                None => None,
                Some(FieldRef::UserId) => reading(&event.get_item(crate::event::USER_ID)?)?,
                Some(FieldRef::Attr(name)) => {
                    let value = attrs.call_method1(pyo3::intern!(event.py(), "get"), (name,))?;
                    reading(&value)?
                }
            };
            if let Some(touch) = Touched::new(index, closes, reading) {
                touched.push(touch);
            }
        }
        Ok(touched)
    }

    /// The instants at which what an event at `ts` fed leaves or enters a window at an
    /// instant other than midnight (when every tenant is measured again anyway): a
    /// tenant's components and signals over such windows are looked at again then.
    pub fn moves(&self, ts: i64, touches: &Touches) -> Vec<i64> {
        let mut instants = Vec::new();
        for (measure, _, closes) in touches.touched() {
            if !closes {
                self.measures[measure].spec.moves(ts, &mut instants);
            }
        }
        instants
    }

    /// The instants at which what the measures hold leaves or enters a window (see
    /// `moves`), for a restored tenant.
    pub fn held_moves(&self, states: &[State]) -> Vec<i64> {
        let mut instants = Vec::new();
        for (state, measure) in states.iter().zip(&self.measures) {
            for at in state.times() {
                measure.spec.moves(at, &mut instants);
            }
        }
        instants
    }

    /// The instants at which a tenant's measures of time (days since, the oldest open
    /// item's age, days until a date) will cross a declared signal's bound, as they stand:
    /// the tenant is looked at again then, rather than at its next event or midnight.
    pub fn deadlines(&self, states: &[State]) -> Vec<i64> {
        let day = crate::tenant::MS_PER_DAY as f64;
        let mut instants = Vec::new();
        for condition in &self.conditions {
            if !matches!(condition.versus, Versus::Itself) {
                continue;
            }
            let kind = self.measures[condition.measure].spec.kind;
            let Some(from) = states[condition.measure].time_held() else {
                continue;
            };
            // The first millisecond past the bound (values are days from or to `from`).
            let crossing = match (kind, condition.above, condition.below) {
                (Kind::DaysSince | Kind::OldestOpen, Some(above), _) => {
                    from + (above * day).floor() as i64 + 1
                }
                (Kind::DaysUntil, _, Some(below)) => from - (below * day).ceil() as i64 + 1,
                _ => continue,
            };
            instants.push(crossing);
        }
        instants
    }

    /// How many measures are declared.
    pub fn len(&self) -> usize {
        self.measures.len()
    }

    /// Whether a measure's value moves between midnights (see Spec::moves_within_days).
    pub fn moves_within_days(&self, measure: usize) -> bool {
        self.measures[measure].spec.moves_within_days()
    }

    /// Fold an event's touches into the tenant's measures; the measures that refused a
    /// new key, and the key.
    pub fn apply(
        &self,
        states: &mut [State],
        ts: i64,
        touches: Touches,
        max_keys: usize,
    ) -> Vec<(&str, Option<String>)> {
        let mut refused = Vec::new();
        for Touched {
            measure: index,
            touch,
        } in touches.into_touched()
        {
            let measure = &self.measures[index];
            // The key, for the log, only where one could be refused.
            let key = match &touch {
                Touch::Feed(Some(reading)) if states[index].keys_held() >= max_keys => {
                    Some(reading.key().to_string())
                }
                _ => None,
            };
            if !states[index].apply(&measure.spec, ts, touch, max_keys) {
                refused.push((measure.name.as_str(), key));
            }
        }
        refused
    }

    /// An event's touches as a snapshot keeps them: (measure, its digest, closes,
    /// reading), by name, so that a restore under other declarations drops the rest.
    pub fn touches_to_py<'py>(
        &self,
        py: Python<'py>,
        touches: &Touches,
    ) -> PyResult<Bound<'py, PyList>> {
        let saved = PyList::empty(py);
        for (index, reading, closes) in touches.touched() {
            let measure = &self.measures[index];
            let reading = reading_to_py(py, reading)?;
            saved.append((&measure.name, &measure.digest, closes, reading))?;
        }
        Ok(saved)
    }

    /// A queued event's touches from a snapshot: those saved under declarations that
    /// still hold, and for the measures declared since (or changed), what the attributes
    /// the snapshot kept of the event (`attrs`, of `kind`) give them (none that reads the
    /// user: a snapshot does not keep it).
    pub fn touches_from_saved(
        &self,
        kind: &str,
        attrs: &Bound<'_, PyAny>,
        saved: &Bound<'_, PyAny>,
    ) -> PyResult<Touches> {
        let mut touches = self.touches_from_py(saved)?;
        let Some(fed) = self.by_type.get(kind) else {
            return Ok(touches);
        };
        let covered: Vec<usize> = touches.measures().collect();
        for &(index, closes) in fed {
            let measure = &self.measures[index];
            if covered.contains(&index) || matches!(measure.field, Some(FieldRef::UserId)) {
                continue;
            }
            if !closes && !matches(attrs, &measure.filter)? {
                continue;
            }
            let reading = match &measure.field {
                Some(FieldRef::Attr(name)) => {
                    reading(&attrs.call_method1(pyo3::intern!(attrs.py(), "get"), (name,))?)?
                }
                _ => None,
            };
            if let Some(touch) = Touched::new(index, closes, reading) {
                touches.push(touch);
            }
        }
        Ok(touches)
    }

    /// Saved touches, as far as the declarations they were made under still hold.
    fn touches_from_py(&self, saved: &Bound<'_, PyAny>) -> PyResult<Touches> {
        let mut touches = Touches::default();
        for entry in saved.try_iter()? {
            let (name, digest, closes, value): (String, String, bool, Bound<'_, PyAny>) =
                entry?.extract()?;
            let found = self
                .measures
                .iter()
                .position(|m| m.name == name && m.digest == digest);
            if let Some(measure) = found {
                if let Some(touch) = Touched::new(measure, closes, reading(&value)?) {
                    touches.push(touch);
                }
            }
        }
        Ok(touches)
    }

    pub fn prune(&self, states: &mut [State], now: i64) {
        for (state, measure) in states.iter_mut().zip(&self.measures) {
            state.prune(&measure.spec, now);
        }
    }

    /// The signals whose bound the tenant's measures cross at `now` and did not at its
    /// last evaluation (`active`, a bit per signal, updated): a signal is raised once
    /// per crossing. `since`: when the tenant was first seen (its history starts there).
    pub fn evaluate(
        &self,
        states: &[State],
        active: &mut u64,
        now: i64,
        since: i64,
    ) -> Vec<Raised> {
        let mut raised = Vec::new();
        for (index, condition) in self.conditions.iter().enumerate() {
            if self.measures[condition.measure].spec.closes_at(now) {
                *active &= !(1u64 << index); // a calendar window's signal is of that window
            }
            let (reading, other) = self.compared(condition, states, now);
            let within = |x: f64| {
                condition.above.is_none_or(|bound| x > bound)
                    && condition.below.is_none_or(|bound| x < bound)
            };
            let mut history = None;
            let mut other = other;
            let crossed = match (&condition.versus, &reading, &other) {
                (Versus::Equals(text), Some(Reading::Text(value)), _) => **value == **text,
                (Versus::Equals(_), _, _) => false,
                (
                    Versus::History {
                        percentile,
                        windows,
                        min,
                    },
                    Some(Reading::Num(value)),
                    _,
                ) => {
                    let measure = &self.measures[condition.measure];
                    let past = || {
                        states[condition.measure].past_windows(&measure.spec, now, *windows, since)
                    };
                    // The bounds first: they rule out most tenants without a history.
                    let found = within(*value)
                        .then(past)
                        .filter(|past| past.len() >= *min)
                        .map(|past| {
                            let held = (past.len(), crate::measures::total(past.iter().copied()));
                            (percentile_of(past, *percentile), held)
                        })
                        .filter(|(level, _)| value > level);
                    if let Some((level, held)) = found {
                        other = Some(Reading::Num(level));
                        history = Some(held);
                    }
                    found.is_some()
                }
                (versus, Some(Reading::Num(value)), other) => {
                    let other = other.as_ref().and_then(Reading::num);
                    let compared = match (versus, other) {
                        (Versus::Itself, _) => Some(*value),
                        (Versus::PreviousValue, Some(before)) => Some(value - before),
                        (Versus::PreviousWindow(least), Some(before))
                            if before > 0.0 && before >= *least =>
                        {
                            Some(value / before)
                        }
                        (Versus::Per(_), Some(per)) if per > 0.0 => Some(value / per),
                        _ => None,
                    };
                    compared.is_some_and(within)
                }
                _ => false,
            };
            let bit = 1u64 << index;
            if crossed && *active & bit == 0 {
                raised.push(Raised {
                    signal: index,
                    measured: reading,
                    other,
                    history,
                });
            }
            if crossed {
                *active |= bit;
            } else {
                *active &= !bit;
            }
        }
        raised
    }

    /// A measure's reading at `now`: its number, or for a latest measure its latest
    /// value (a number or a text).
    pub fn reading(&self, states: &[State], measure: usize, now: i64) -> Option<Reading> {
        let state = &states[measure];
        match state {
            State::Latest(held) => held.0.clone(),
            _ => state
                .value(&self.measures[measure].spec, now)
                .map(Reading::Num),
        }
    }

    /// A count's or sum's value over the window before the one counted at `now`.
    pub fn previous_window(&self, states: &[State], measure: usize, now: i64) -> Option<f64> {
        states[measure].previous_window(&self.measures[measure].spec, now)
    }

    /// A measure is compared with the window before: keep two windows of it.
    pub fn keep_previous_window(&mut self, measure: usize) {
        let spec = &mut self.measures[measure].spec;
        spec.windows_kept = spec.windows_kept.max(2);
    }

    /// A condition's measure at `now`, and what it is compared with.
    fn compared(
        &self,
        condition: &Condition,
        states: &[State],
        now: i64,
    ) -> (Option<Reading>, Option<Reading>) {
        let state = &states[condition.measure];
        let spec = &self.measures[condition.measure].spec;
        let value = |state: &State, spec: &Spec| state.value(spec, now).map(Reading::Num);
        match &condition.versus {
            Versus::Itself => (value(state, spec), None),
            Versus::Per(per) => (
                value(state, spec),
                value(&states[*per], &self.measures[*per].spec),
            ),
            Versus::PreviousWindow(_) => (
                value(state, spec),
                state.previous_window(spec, now).map(Reading::Num),
            ),
            Versus::History { .. } => (value(state, spec), None),
            Versus::PreviousValue | Versus::Equals(_) => {
                let (latest, previous) = state.readings();
                (latest.cloned(), previous.cloned())
            }
        }
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

pub fn reading_to_py<'py>(
    py: Python<'py>,
    reading: Option<&Reading>,
) -> PyResult<Bound<'py, PyAny>> {
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
        State::Latest(held) => (
            reading_to_py(py, held.0.as_ref())?,
            reading_to_py(py, held.1.as_ref())?,
        )
            .into_pyobject(py)?
            .into_any(),
        State::Last(last) | State::Deadline(last) => last.into_pyobject(py)?.into_any(),
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
            State::Latest(Box::new((reading(&latest)?, reading(&previous)?)))
        }
        State::Last(_) => State::Last(plain.extract()?),
        State::Deadline(_) => State::Deadline(plain.extract()?),
    })
}
