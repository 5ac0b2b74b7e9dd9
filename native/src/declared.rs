//! The measures and signals declared in the settings, as the core runs them: which
//! measures an event feeds, and which signals a tenant's measures raise. vigil/engine/measures.py
//! checks the declarations and hands them over (`compiled`).

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
    /// What keys its items (states; for open items, the field).
    key: Option<FieldRef>,
    filter: Vec<(String, String)>,
}

impl Measure {
    /// Open items held while their field's value is one of held_while, keyed apart
    /// (an invoice by its id, while its status is overdue or failed).
    fn holds_by_value(&self) -> bool {
        self.spec.kind == Kind::OldestOpen && !self.spec.held_while.is_empty()
    }
}

/// The most values a measure of the fleet keeps (a producer that puts ids into them would
/// grow every shard without end).
pub const MAX_FLEET_VALUES: usize = 10_000;

/// What an event type does to a measure.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    Feeds,
    Closes,
    Starts,
    Completes,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Feeds => "feeds",
            Role::Closes => "closes",
            Role::Starts => "starts",
            Role::Completes => "completes",
        }
    }

    /// A saved role: its name, or (in stores of earlier versions) whether it closes.
    fn from_saved(saved: &Bound<'_, PyAny>) -> PyResult<Role> {
        if let Ok(closes) = saved.extract::<bool>() {
            return Ok(if closes { Role::Closes } else { Role::Feeds });
        }
        Ok(match saved.extract::<String>()?.as_str() {
            "closes" => Role::Closes,
            "starts" => Role::Starts,
            "completes" => Role::Completes,
            _ => Role::Feeds,
        })
    }
}

/// What a declared signal compares its measure with.
enum Versus {
    /// Nothing: the measure's value itself.
    Itself,
    /// Another measure: the ratio of the two.
    Per(usize),
    /// The window before (counts and sums): the ratio of the two, when the window before
    /// holds at least the minimum, and the change is at least this many standard errors
    /// of counts (0: any change): noise in a small account is no growth.
    PreviousWindow(f64, f64),
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
    /// A process open with no progress for longer than this.
    Stalled(i64),
}

/// A signal raised when a measure, against what it is compared with, crosses a bound.
struct Condition {
    measure: usize,
    versus: Versus,
    above: Option<f64>,
    below: Option<f64>,
    /// Calendar windows in a row the bound must hold for (1: the latest alone).
    running: usize,
    /// Other measures that must be at least these values (users seen, seats).
    requires: Vec<(usize, f64)>,
    /// How long after the tenant was first seen it may be raised.
    min_age: i64,
}

/// A declared signal's condition as vigil.engine.measures.compiled gives it
/// (vigil.engine.measures.ConditionSpec).
#[derive(FromPyObject)]
pub struct ConditionSpec {
    measure: usize,
    /// "", "per", "previous_window", "previous_value", "history", "equals" or "stalled".
    versus: String,
    per: Option<usize>,
    min_previous: f64,
    equals: Option<String>,
    above: Option<f64>,
    below: Option<f64>,
    /// For a history: (percentile, windows kept, fewest to compare with).
    history: Option<(f64, usize, usize)>,
    stalled_after: Option<i64>,
    running: usize,
    requires: Vec<(usize, f64)>,
    min_age: i64,
    min_sigma: f64,
}

/// A declared measure as vigil.engine.measures.compiled gives it
/// (vigil.engine.measures.MeasureSpec).
#[derive(FromPyObject)]
pub struct MeasureSpec {
    name: String,
    digest: String,
    kind: String,
    events: Vec<String>,
    closed_by: Vec<String>,
    started_by: Vec<String>,
    completed_by: Vec<String>,
    field: Option<String>,
    key: Option<String>,
    filter: Vec<(String, String)>,
    window: i64,
    bucket: i64,
    calendar: Option<i64>,
    held_while: Vec<String>,
    steps: Vec<String>,
    half_life: i64,
    among: Vec<String>,
    of_fleet: i64,
}

/// What an event does to one declared measure.
pub struct Touched {
    measure: usize,
    touch: Touch,
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

    /// Each measure it touches, and how (None: fed without a reading).
    fn touched(&self) -> impl Iterator<Item = (usize, Option<&Touch>)> + '_ {
        set_bits(self.bare)
            .map(|measure| (measure, None))
            .chain(self.read.iter().map(|t| (t.measure, Some(&t.touch))))
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
    /// For a stalled process: when it started, and last progressed.
    pub stalled: Option<(i64, i64)>,
}

#[derive(Default)]
pub struct Declared {
    measures: Vec<Measure>,
    conditions: Vec<Condition>,
    /// Event type -> the measures it touches, and how.
    by_type: HashMap<String, Vec<(usize, Role)>>,
    /// (process measure, period): a signal or component over it changes when the period
    /// passes without progress.
    stalls: Vec<(usize, i64)>,
    /// Of each measure whose value is a share of what the fleet used (Spec::of_fleet):
    /// each value the fleet's tenants used, and when last; empty for the others.
    fleet: Vec<HashMap<Box<str>, i64>>,
    /// What the fleet used, as the splitter noted it, until its step: (time, measure,
    /// value).
    fleet_pending: Vec<(i64, usize, Box<str>)>,
}

fn kind_of(name: &str) -> PyResult<Kind> {
    Ok(match name {
        "count" => Kind::Count,
        "sum" => Kind::Sum,
        "days" => Kind::Days,
        "distinct" => Kind::Distinct,
        "top_share" => Kind::TopShare,
        "latest" => Kind::Latest,
        "open_items" => Kind::OpenItems,
        "oldest_open" => Kind::OldestOpen,
        "days_since" => Kind::DaysSince,
        "days_until" => Kind::DaysUntil,
        "states" => Kind::States,
        "process" => Kind::Process,
        other => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "no measure kind {other:?}"
            )))
        }
    })
}

fn field_ref(field: Option<String>) -> Option<FieldRef> {
    field.map(|f| match f.strip_prefix("attrs.") {
        Some(attr) => FieldRef::Attr(attr.to_string()),
        None => FieldRef::UserId,
    })
}

impl Declared {
    pub fn new(measures: Vec<MeasureSpec>, conditions: Vec<ConditionSpec>) -> PyResult<Self> {
        let mut declared = Declared::default();
        for (index, m) in measures.into_iter().enumerate() {
            let roles = [
                (m.events, Role::Feeds),
                (m.closed_by, Role::Closes),
                (m.started_by, Role::Starts),
                (m.completed_by, Role::Completes),
            ];
            for (types, role) in roles {
                for kind in types {
                    declared
                        .by_type
                        .entry(kind)
                        .or_default()
                        .push((index, role));
                }
            }
            let kind = kind_of(&m.kind)?;
            let mut steps: Vec<Box<str>> = m.steps.into_iter().map(Into::into).collect();
            steps.sort();
            steps.dedup();
            let mut among: Vec<Box<str>> = m.among.into_iter().map(Into::into).collect();
            among.sort();
            among.dedup();
            declared.fleet.push(HashMap::default());
            let key = match (kind, m.key) {
                // open items are keyed by their field, unless held while a field's value
                // is one of held_while (key and field, as states)
                (Kind::OpenItems | Kind::OldestOpen, None) => field_ref(m.field.clone()),
                (_, key) => field_ref(key),
            };
            declared.measures.push(Measure {
                name: m.name,
                digest: m.digest,
                spec: Spec {
                    calendar: m.calendar,
                    held_while: m.held_while.into_iter().map(Into::into).collect(),
                    steps,
                    half_life: m.half_life,
                    among,
                    of_fleet: m.of_fleet,
                    ..Spec::new(kind, m.window, m.bucket)
                },
                field: field_ref(m.field),
                key,
                filter: m.filter,
            });
        }
        for c in conditions {
            let measure = c.measure;
            let versus = match (c.versus.as_str(), c.per, c.equals) {
                ("", _, _) => Versus::Itself,
                ("per", Some(per), _) => Versus::Per(per),
                ("previous_window", _, _) => {
                    declared.keep_previous_window(measure);
                    Versus::PreviousWindow(c.min_previous, c.min_sigma)
                }
                ("previous_value", _, _) => Versus::PreviousValue,
                ("history", _, _) => {
                    let (percentile, windows, min) = c.history.ok_or_else(|| {
                        pyo3::exceptions::PyValueError::new_err("a history without its terms")
                    })?;
                    let spec = &mut declared.measures[measure].spec;
                    spec.windows_kept = spec.windows_kept.max(windows as i64 + 1);
                    Versus::History {
                        percentile,
                        windows,
                        min,
                    }
                }
                ("equals", _, Some(text)) => Versus::Equals(text),
                ("stalled", _, _) => {
                    let after = c.stalled_after.ok_or_else(|| {
                        pyo3::exceptions::PyValueError::new_err("a stall without its period")
                    })?;
                    declared.watch_stall(measure, after);
                    Versus::Stalled(after)
                }
                (other, _, _) => {
                    return Err(pyo3::exceptions::PyValueError::new_err(format!(
                        "no comparison {other:?}"
                    )))
                }
            };
            if c.running > 1 {
                let spec = &mut declared.measures[measure].spec;
                spec.windows_kept = spec.windows_kept.max(c.running as i64);
            }
            declared.conditions.push(Condition {
                measure,
                versus,
                above: c.above,
                below: c.below,
                running: c.running.max(1),
                requires: c.requires,
                min_age: c.min_age,
            });
        }
        Ok(declared)
    }

    pub fn is_empty(&self) -> bool {
        self.measures.is_empty()
    }

    /// Whether every tenant must be evaluated at `now`, the silent ones included: a
    /// calendar window closes between midnights (when all are) under a signal a tenant
    /// without events in it, nor in the one before, could raise. Those with events in
    /// them are looked at anyway (see `moves`).
    pub fn needs_everyone_at(&self, now: i64) -> bool {
        self.conditions.iter().any(|c| {
            let spec = &self.measures[c.measure].spec;
            spec.closes_at(now) && spec.moves_within_days() && self.crosses_at_zero(c)
        })
    }

    /// Whether a tenant whose measure counted nothing, now and before, could raise it.
    fn crosses_at_zero(&self, condition: &Condition) -> bool {
        let within = |x: f64| {
            condition.above.is_none_or(|bound| x > bound)
                && condition.below.is_none_or(|bound| x < bound)
        };
        match condition.versus {
            Versus::Itself => within(0.0),
            Versus::PreviousWindow(..) => false, // needs something the window before
            Versus::History { .. } => condition.above.is_none_or(|bound| bound < 0.0),
            _ => true,
        }
    }

    /// Whether a condition reads its measure alone (not another measure besides).
    fn of_its_measure_alone(&self, condition: &Condition) -> bool {
        matches!(
            condition.versus,
            Versus::Itself | Versus::PreviousWindow(..) | Versus::History { .. }
        )
    }

    /// Whether a signal or component reads the measure as a process that stalls.
    pub fn stalls(&self, measure: usize) -> bool {
        self.stalls.iter().any(|(m, _)| *m == measure)
    }

    /// Whether the measure's value moves with time alone (it is measured again at
    /// midnight): all but the latest values and the items held.
    pub fn varies_with_time(&self, measure: usize) -> bool {
        !matches!(
            self.measures[measure].spec.kind,
            Kind::Latest | Kind::States | Kind::OpenItems
        )
    }

    /// A tenant's measures, none fed yet.
    pub fn fresh(&self) -> Vec<State> {
        self.measures
            .iter()
            .map(|m| State::new(m.spec.kind))
            .collect()
    }

    /// What an event (a vigil.intake.events.Event) of type `kind` does to the declared
    /// measures, read from it when it is accepted: the event itself is not kept in the
    /// queue.
    pub fn touches(&self, kind: &str, event: &Bound<'_, PyTuple>) -> PyResult<Touches> {
        let mut touched = Touches::default();
        let Some(roles) = self.by_type.get(kind) else {
            return Ok(touched);
        };
        // Most measures of most events read nothing of them (a session counts).
        if !roles.iter().any(|&(index, role)| self.reads(index, role)) {
            for &(index, role) in roles {
                let touch = match role {
                    Role::Starts => Touch::Start,
                    Role::Completes => Touch::Complete,
                    _ => Touch::Feed(None),
                };
                touched.push(Touched {
                    measure: index,
                    touch,
                });
            }
            return Ok(touched);
        }
        let attrs = event.get_item(crate::event::ATTRS)?;
        let user = event.get_item(crate::event::USER_ID)?;
        for &(index, role) in roles {
            if let Some(touch) = self.touch(index, role, &attrs, Some(&user))? {
                touched.push(Touched {
                    measure: index,
                    touch,
                });
            }
        }
        Ok(touched)
    }

    /// Whether what the event does to the measure depends on more than its type.
    fn reads(&self, index: usize, role: Role) -> bool {
        let measure = &self.measures[index];
        match role {
            Role::Feeds => measure.field.is_some() || !measure.filter.is_empty(),
            Role::Closes => true,
            Role::Starts | Role::Completes => false,
        }
    }

    /// What an event with these attributes (and user, if known) does to a measure in
    /// this role; None: nothing (filtered out, or without the key it needs).
    fn touch(
        &self,
        index: usize,
        role: Role,
        attrs: &Bound<'_, PyAny>,
        user: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<Touch>> {
        let measure = &self.measures[index];
        let read = |field: &Option<FieldRef>| -> PyResult<Option<Reading>> {
            match (field, user) {
                (None, _) => Ok(None),
                (Some(FieldRef::UserId), Some(user)) => reading(user),
                (Some(FieldRef::UserId), None) => Ok(None),
                (Some(FieldRef::Attr(name)), _) => reading(&attr(attrs, name)?),
            }
        };
        Ok(match role {
            Role::Starts => Some(Touch::Start),
            Role::Completes => Some(Touch::Complete),
            Role::Closes => read(&measure.key)?.map(Touch::Close),
            Role::Feeds if !matches(attrs, &measure.filter)? => None,
            Role::Feeds if measure.spec.kind == Kind::States || measure.holds_by_value() => {
                match read(&measure.key)? {
                    Some(key) => Some(Touch::Put(key, read(&measure.field)?)),
                    None => None,
                }
            }
            Role::Feeds => Some(Touch::Feed(read(&measure.field)?)),
        })
    }

    /// The instants at which what an event at `ts` fed leaves or enters a window at an
    /// instant other than midnight (when every tenant is measured again anyway): a
    /// tenant's components and signals over such windows are looked at again then.
    pub fn moves(&self, ts: i64, touches: &Touches) -> Vec<i64> {
        let mut instants = Vec::new();
        for (measure, touch) in touches.touched() {
            if matches!(touch, None | Some(Touch::Feed(_))) {
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
        for &(measure, after) in &self.stalls {
            if let Some(progress) = states[measure].time_held() {
                instants.push(progress + after + 1);
            }
        }
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
        let Touches { bare, read } = touches;
        for index in set_bits(bare) {
            states[index].feed(&self.measures[index].spec, ts);
        }
        for Touched {
            measure: index,
            touch,
        } in read
        {
            let measure = &self.measures[index];
            let among = &measure.spec.among;
            if let Touch::Feed(Some(value)) = &touch {
                if !among.is_empty() && among.binary_search(&value.key()).is_err() {
                    continue; // not one of the values it counts (share_of)
                }
            }
            // The key, for the log, only where one could be refused.
            let key = match touch.key() {
                Some(reading) if states[index].keys_held() >= max_keys => {
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

    /// An event's touches as a snapshot keeps them: (measure, its digest, role, what it
    /// read), by name, so that a restore under other declarations drops the rest.
    pub fn touches_to_py<'py>(
        &self,
        py: Python<'py>,
        touches: &Touches,
    ) -> PyResult<Bound<'py, PyList>> {
        let saved = PyList::empty(py);
        for (index, touch) in touches.touched() {
            let measure = &self.measures[index];
            let (role, read) = match touch {
                None => (Role::Feeds, py.None().into_bound(py)),
                Some(Touch::Feed(reading)) => (Role::Feeds, reading_to_py(py, reading.as_ref())?),
                Some(Touch::Put(key, value)) => (
                    Role::Feeds,
                    (
                        reading_to_py(py, Some(key))?,
                        reading_to_py(py, value.as_ref())?,
                    )
                        .into_pyobject(py)?
                        .into_any(),
                ),
                Some(Touch::Close(key)) => (Role::Closes, reading_to_py(py, Some(key))?),
                Some(Touch::Start) => (Role::Starts, py.None().into_bound(py)),
                Some(Touch::Complete) => (Role::Completes, py.None().into_bound(py)),
            };
            saved.append((&measure.name, &measure.digest, role.name(), read))?;
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
        let Some(roles) = self.by_type.get(kind) else {
            return Ok(touches);
        };
        let covered: Vec<usize> = touches.measures().collect();
        for &(index, role) in roles {
            if covered.contains(&index) {
                continue;
            }
            let measure = &self.measures[index];
            let reads_user = |field: &Option<FieldRef>| matches!(field, Some(FieldRef::UserId));
            if reads_user(&measure.field) || reads_user(&measure.key) {
                continue; // the user was not kept
            }
            if let Some(touch) = self.touch(index, role, attrs, None)? {
                touches.push(Touched {
                    measure: index,
                    touch,
                });
            }
        }
        Ok(touches)
    }

    /// Saved touches, as far as the declarations they were made under still hold.
    fn touches_from_py(&self, saved: &Bound<'_, PyAny>) -> PyResult<Touches> {
        let mut touches = Touches::default();
        for entry in saved.try_iter()? {
            let (name, digest, role, read): (String, String, Bound<'_, PyAny>, Bound<'_, PyAny>) =
                entry?.extract()?;
            let found = self
                .measures
                .iter()
                .position(|m| m.name == name && m.digest == digest);
            let Some(measure) = found else {
                continue;
            };
            let touch = match Role::from_saved(&role)? {
                Role::Starts => Touch::Start,
                Role::Completes => Touch::Complete,
                Role::Closes => match reading(&read)? {
                    Some(key) => Touch::Close(key),
                    None => continue,
                },
                Role::Feeds
                    if self.measures[measure].spec.kind == Kind::States
                        || self.measures[measure].holds_by_value() =>
                {
                    let (key, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = read.extract()?;
                    match reading(&key)? {
                        Some(key) => Touch::Put(key, reading(&value)?),
                        None => continue,
                    }
                }
                Role::Feeds => Touch::Feed(reading(&read)?),
            };
            touches.push(Touched { measure, touch });
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
    /// The signals that held at the last evaluation and hold no more go in `cleared`.
    pub fn evaluate(
        &self,
        states: &mut [State],
        active: &mut u64,
        now: i64,
        since: i64,
        cleared: &mut Vec<usize>,
    ) -> Vec<Raised> {
        let mut raised = Vec::new();
        for (index, condition) in self.conditions.iter().enumerate() {
            let held = *active >> index & 1 == 1;
            let spec = &self.measures[condition.measure].spec;
            if spec.calendar.is_some() && self.of_its_measure_alone(condition) {
                if !spec.closes_at(now) {
                    continue; // the window it reads closed before, and has not moved since
                }
                *active &= !(1u64 << index); // a calendar window's signal is of that window
            } else if spec.closes_at(now) {
                *active &= !(1u64 << index);
            }
            let (reading, other) = self.compared(condition, states, now);
            let within = |x: f64| {
                condition.above.is_none_or(|bound| x > bound)
                    && condition.below.is_none_or(|bound| x < bound)
            };
            let mut history = None;
            let mut stalled = None;
            let mut other = other;
            let crossed = match (&condition.versus, &reading, &other) {
                (Versus::Stalled(after), _, _) => {
                    let process = states[condition.measure].open_process();
                    let through = process.and_then(|p| p.signalled_through);
                    if let Some((Some(started), Some(last))) =
                        process.map(|p| (p.started, p.last_progress))
                    {
                        stalled = Some((started, last));
                    }
                    // Raised once per stretch without progress, even if the period
                    // changed since (a restore under other settings).
                    let signalled = *active >> index & 1 == 1 && through.is_some();
                    stalled.is_some_and(|(_, last)| {
                        now - last > *after || (signalled && through == Some(last))
                    })
                }
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
                        (Versus::PreviousWindow(least, sigma), Some(before))
                            if before > 0.0
                                && before >= *least
                                && (value - before).abs() >= sigma * (value + before).sqrt() =>
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
            let crossed = crossed
                && now - since >= condition.min_age
                && self.required(condition, states, now)
                && (condition.running == 1 || {
                    let spec = &self.measures[condition.measure].spec;
                    let before = condition.running - 1;
                    let past = states[condition.measure].past_windows(spec, now, before, since);
                    past.len() == before && past.into_iter().all(within)
                });
            let bit = 1u64 << index;
            if crossed && *active & bit == 0 {
                if let (State::Process(Some(process)), Some((_, last))) =
                    (&mut states[condition.measure], stalled)
                {
                    process.signalled_through = Some(last);
                }
                raised.push(Raised {
                    signal: index,
                    measured: reading,
                    other,
                    history,
                    stalled,
                });
            }
            if crossed {
                *active |= bit;
            } else {
                *active &= !bit;
                if held {
                    cleared.push(index);
                }
            }
        }
        raised
    }

    /// Whether the measures a condition requires are at least what it asks.
    fn required(&self, condition: &Condition, states: &[State], now: i64) -> bool {
        condition.requires.iter().all(|(measure, least)| {
            self.reading(states, *measure, now)
                .as_ref()
                .and_then(Reading::num)
                .is_some_and(|value| value >= *least)
        })
    }

    /// A measure's reading at `now`: its number, or for a latest measure its latest
    /// value (a number or a text).
    pub fn reading(&self, states: &[State], measure: usize, now: i64) -> Option<Reading> {
        match &states[measure] {
            State::Latest(held) => held.as_ref()?.0.clone(),
            _ => self.value(states, measure, now).map(Reading::Num),
        }
    }

    /// A measure's number at `now`; of a share, the values counted over all there are
    /// (none while there are none).
    fn value(&self, states: &[State], measure: usize, now: i64) -> Option<f64> {
        let spec = &self.measures[measure].spec;
        let value = states[measure].value(spec, now)?;
        if !spec.is_share() {
            return Some(value);
        }
        let all = if spec.among.is_empty() {
            let since = now - spec.of_fleet;
            self.fleet[measure]
                .values()
                .filter(|at| **at >= since)
                .count()
        } else {
            spec.among.len()
        };
        (all > 0).then(|| (value / all as f64).min(1.0))
    }

    /// A value the fleet used at `at`, of the measure named (ignored if it is no share of
    /// the fleet's), to be applied at its step.
    pub fn note_fleet(&mut self, measure: &str, value: Box<str>, at: i64) {
        let found = self.measures.iter().position(|m| m.name == measure);
        if let Some(index) = found.filter(|&i| self.measures[i].spec.of_fleet > 0) {
            self.fleet_pending.push((at, index, value));
        }
    }

    /// What the fleet used before `now`, into the fleet's values (each kept at its
    /// latest time, so in any order), as the events before it are applied.
    pub fn apply_fleet_before(&mut self, now: i64) {
        if self.fleet_pending.is_empty() {
            return;
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.fleet_pending)
            .into_iter()
            .partition(|(at, _, _)| *at < now);
        self.fleet_pending = later;
        for (at, index, value) in due {
            let fleet = &mut self.fleet[index];
            let full = fleet.len() >= crate::declared::MAX_FLEET_VALUES;
            match fleet.get_mut(&value) {
                Some(held) => *held = (*held).max(at),
                None if !full => {
                    fleet.insert(value, at);
                }
                None => {} // bounded: ids put into the values would grow it without end
            }
        }
    }

    /// The values noted and not applied yet, as a snapshot keeps them.
    pub fn fleet_pending_to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let saved = PyList::empty(py);
        for (at, index, value) in &self.fleet_pending {
            saved.append((&self.measures[*index].name, &**value, *at))?;
        }
        Ok(saved)
    }

    /// Forget what the fleet used longer ago than its measures look.
    pub fn prune_fleet(&mut self, now: i64) {
        for (fleet, measure) in self.fleet.iter_mut().zip(&self.measures) {
            if !fleet.is_empty() {
                let since = now - measure.spec.of_fleet;
                fleet.retain(|_, at| *at >= since);
            }
        }
    }

    /// What the fleet used, as a snapshot keeps it: name -> (digest, value -> last used).
    pub fn fleet_to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let saved = PyDict::new(py);
        for (fleet, measure) in self.fleet.iter().zip(&self.measures) {
            if !fleet.is_empty() {
                let values = PyDict::new(py);
                for (value, at) in fleet {
                    values.set_item(&**value, *at)?;
                }
                saved.set_item(&measure.name, (&measure.digest, values))?;
            }
        }
        Ok(saved)
    }

    /// What the fleet used, as saved, for the measures declared as they were.
    pub fn restore_fleet(&mut self, saved: &Bound<'_, PyAny>) -> PyResult<()> {
        let saved = saved.cast::<PyDict>()?;
        for (fleet, measure) in self.fleet.iter_mut().zip(&self.measures) {
            if let Some(entry) = saved.get_item(&measure.name)? {
                let (digest, values): (String, HashMap<String, i64>) = entry.extract()?;
                if digest == measure.digest && measure.spec.of_fleet > 0 {
                    *fleet = values.into_iter().map(|(v, at)| (v.into(), at)).collect();
                }
            }
        }
        Ok(())
    }

    /// A count's or sum's value over the window before the one counted at `now`.
    pub fn previous_window(&self, states: &[State], measure: usize, now: i64) -> Option<f64> {
        states[measure].previous_window(&self.measures[measure].spec, now)
    }

    /// A process measure is read as stalled after `after` without progress: look at its
    /// tenants again then.
    pub fn watch_stall(&mut self, measure: usize, after: i64) {
        if !self.stalls.contains(&(measure, after)) {
            self.stalls.push((measure, after));
        }
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
        let value = |measure: usize| self.value(states, measure, now).map(Reading::Num);
        match &condition.versus {
            Versus::Itself => (value(condition.measure), None),
            Versus::Per(per) => (value(condition.measure), value(*per)),
            Versus::PreviousWindow(..) => (
                value(condition.measure),
                state.previous_window(spec, now).map(Reading::Num),
            ),
            Versus::History { .. } | Versus::Stalled(_) => (value(condition.measure), None),
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

/// An attribute of an event (None if it has none): read from the dict itself, not by
/// calling its `get`, as this is done for most events.
fn attr<'py>(attrs: &Bound<'py, PyAny>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    let found = match attrs.cast::<PyDict>() {
        Ok(dict) => dict.get_item(name)?,
        Err(_) => Some(attrs.call_method1(pyo3::intern!(attrs.py(), "get"), (name,))?),
    };
    Ok(found.unwrap_or_else(|| attrs.py().None().into_bound(attrs.py())))
}

fn matches(attrs: &Bound<'_, PyAny>, filter: &[(String, String)]) -> PyResult<bool> {
    for (attr_name, wanted) in filter {
        let value = attr(attrs, attr_name)?;
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
            for (key, at) in keys.iter().flat_map(|held| held.iter()) {
                dict.set_item(&**key, at)?;
            }
            dict.into_any()
        }
        State::Shares(shares) => {
            let dict = PyDict::new(py);
            for (key, counts) in shares.iter().flat_map(|held| held.iter()) {
                dict.set_item(&**key, PyList::new(py, counts.iter().copied())?)?;
            }
            dict.into_any()
        }
        State::Latest(_) => {
            let (latest, previous) = state.readings();
            (reading_to_py(py, latest)?, reading_to_py(py, previous)?)
                .into_pyobject(py)?
                .into_any()
        }
        State::Last(last) | State::Deadline(last) => last.into_pyobject(py)?.into_any(),
        State::States(None) | State::Process(None) => py.None().into_bound(py),
        State::States(Some(held)) => {
            let dict = PyDict::new(py);
            for (key, value) in held.iter() {
                dict.set_item(&**key, reading_to_py(py, Some(value))?)?;
            }
            dict.into_any()
        }
        State::Process(Some(p)) => {
            let mut steps: Vec<&str> = p.steps.iter().map(|s| &**s).collect();
            steps.sort_unstable();
            (
                p.started,
                p.completed,
                p.last_progress,
                steps,
                p.signalled_through,
            )
                .into_pyobject(py)?
                .into_any()
        }
    })
}

fn state_from_py(kind: Kind, plain: &Bound<'_, PyAny>) -> PyResult<State> {
    // None for no key, as a running shard holds it.
    fn keyed<V>(held: HashMap<String, V>) -> crate::measures::Keyed<V> {
        (!held.is_empty()).then(|| Box::new(held.into_iter().map(|(k, v)| (k.into(), v)).collect()))
    }
    Ok(match State::new(kind) {
        State::Buckets(_) => {
            let buckets: Vec<(i64, f64)> = plain.extract()?;
            State::Buckets(buckets.into())
        }
        State::Keys(_) => State::Keys(keyed(plain.extract()?)),
        State::Shares(_) => {
            let shares: HashMap<String, Vec<(i64, f64)>> = plain.extract()?;
            State::Shares(keyed(
                shares.into_iter().map(|(k, v)| (k, v.into())).collect(),
            ))
        }
        State::Latest(..) => {
            let (latest, previous): (Bound<'_, PyAny>, Bound<'_, PyAny>) = plain.extract()?;
            let held = (reading(&latest)?, reading(&previous)?);
            State::Latest((held != (None, None)).then(|| Box::new(held)))
        }
        State::Last(_) => State::Last(plain.extract()?),
        State::Deadline(_) => State::Deadline(plain.extract()?),
        _ if plain.is_none() => State::new(kind),
        State::States(_) => {
            let saved: HashMap<String, Bound<'_, PyAny>> = plain.extract()?;
            let mut held = HashMap::default();
            for (key, value) in saved {
                if let Some(value) = reading(&value)? {
                    held.insert(key.into_boxed_str(), value);
                }
            }
            State::States(Some(Box::new(held)))
        }
        State::Process(_) => {
            // (started, completed, last progress, steps, signalled through)
            let saved: Vec<Bound<'_, PyAny>> = plain.extract()?;
            let at = |i: usize| -> PyResult<Option<i64>> {
                saved.get(i).map_or(Ok(None), |v| v.extract())
            };
            let steps: Vec<String> = match saved.get(3) {
                Some(steps) => steps.extract()?,
                None => Vec::new(),
            };
            let completed = match saved.get(1) {
                Some(done) => done.extract()?,
                None => false,
            };
            State::Process(Some(Box::new(crate::measures::Process {
                started: at(0)?,
                completed,
                last_progress: at(2)?,
                steps: steps.into_iter().map(String::into_boxed_str).collect(),
                signalled_through: at(4)?,
            })))
        }
    })
}
