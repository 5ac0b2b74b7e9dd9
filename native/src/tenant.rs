//! A tenant's state and how an event folds into it. A snapshot saves it as
//! vigil.engine.tenant.TenantState.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use std::sync::Arc;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::fmt::floor_to;

pub const MS_PER_HOUR: i64 = 3_600_000;
pub const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;

// Effects of applying an event that the shard must index (bit flags).
pub const ERRORS: u32 = 1;
pub const ONBOARDING_CLOCK: u32 = 2;
pub const KEY_REFUSED: u32 = 4;

// The components the engine measures with code of its own, by their place among those
// (vigil.engine.tenant.COMPONENT_NAMES); the others are declared over measures.
pub const COMPONENTS: usize = 5;
pub const SUPPORT_LOAD: u32 = 1 << 0;
pub const SENTIMENT: u32 = 1 << 1;
pub const BILLING: u32 = 1 << 2;
pub const INTEGRATIONS: u32 = 1 << 3;
pub const ONBOARDING: u32 = 1 << 4;
pub const ALL_STALE: u32 = (1 << COMPONENTS) - 1;
pub const CLOCK_MOVED: u32 = ONBOARDING;

/// A measure's value: each component keeps one type, as Python's records print it.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Val {
    Int(i64),
    Float(f64),
}

impl Val {
    pub fn as_f64(self) -> f64 {
        match self {
            Val::Int(n) => n as f64,
            Val::Float(x) => x,
        }
    }
}

/// (value, share of the weight earned), or None: no data.
pub type Measure = Option<(Val, f64)>;

/// What the event says, taken out of its attributes once.
pub enum Payload {
    Session,
    Error,
    Integration(String, String),
    OnboardingStarted,
    StepCompleted(String),
    Recipe,
    OnboardingCompleted,
    TicketCreated(String, String),
    TicketResolved(String),
    Survey {
        nps: bool,
        score: f64,
    },
    Invoice(String, String),
    Contract(Option<Py<PyAny>>),
    /// Read by declared measures only (or not at all): nothing of the tenant's own.
    Measured,
    Unhandled,
}

impl Payload {
    /// What an event of type `kind` says, read from its attributes.
    pub fn read(kind: &str, attrs: &Bound<'_, PyAny>) -> PyResult<Payload> {
        let s = |key: &str| -> PyResult<String> { attrs.get_item(key)?.extract() };
        Ok(match kind {
            "user.session" => Payload::Session,
            "error.raised" => Payload::Error,
            "integration.state" => Payload::Integration(s("integration")?, s("state")?),
            "onboarding.started" => Payload::OnboardingStarted,
            "onboarding.step_completed" => Payload::StepCompleted(s("step")?),
            "recipe.completed" => Payload::Recipe,
            "onboarding.completed" => Payload::OnboardingCompleted,
            "ticket.created" => Payload::TicketCreated(s("ticket_id")?, s("priority")?),
            "ticket.resolved" => Payload::TicketResolved(s("ticket_id")?),
            "survey.response" => Payload::Survey {
                nps: s("kind")? == "nps",
                score: attrs.get_item("score")?.extract()?,
            },
            "billing.invoice" => Payload::Invoice(s("invoice_id")?, s("status")?),
            "contract.updated" => {
                let seats = attrs.call_method1(intern!(attrs.py(), "get"), ("seats",))?;
                Payload::Contract(if seats.is_none() {
                    None
                } else {
                    Some(seats.unbind())
                })
            }
            "feature.used"
            | "job.retry"
            | "sponsor.changed"
            | "nudge.sent"
            | "nudge.acted"
            | "deployment.published"
            | "config.changed" => Payload::Measured,
            _ => Payload::Unhandled,
        })
    }

    /// The attributes it was read from, as far as it keeps them: what a snapshot saves
    /// of a queued event (vigil.intake.events' names).
    pub fn to_attrs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let attrs = PyDict::new(py);
        let set = |pairs: &[(&str, &str)]| -> PyResult<()> {
            for (name, value) in pairs {
                attrs.set_item(*name, *value)?;
            }
            Ok(())
        };
        match self {
            Payload::Integration(name, state) => set(&[("integration", name), ("state", state)])?,
            Payload::StepCompleted(step) => set(&[("step", step)])?,
            Payload::TicketCreated(id, priority) => {
                set(&[("ticket_id", id), ("priority", priority)])?
            }
            Payload::TicketResolved(id) => set(&[("ticket_id", id)])?,
            Payload::Invoice(id, status) => set(&[("invoice_id", id), ("status", status)])?,
            Payload::Survey { nps, score } => {
                set(&[("kind", if *nps { "nps" } else { "csat" })])?;
                attrs.set_item("score", *score)?;
            }
            Payload::Contract(Some(seats)) => attrs.set_item("seats", seats.bind(py))?,
            _ => {}
        }
        Ok(attrs)
    }

    /// The key the event adds to one of the tenant's keyed maps, if any (see
    /// vigil.engine.policy.KEYED_MAPS): what a refused key names.
    pub fn key(&self) -> Option<&str> {
        match self {
            Payload::Integration(key, _)
            | Payload::StepCompleted(key)
            | Payload::TicketCreated(key, _)
            | Payload::Invoice(key, _) => Some(key),
            _ => None,
        }
    }

    /// Which components the event type can change: the scorer re-measures only those.
    fn touches(&self) -> u32 {
        match self {
            Payload::Session | Payload::Error => 0,
            Payload::Integration(..) => INTEGRATIONS,
            Payload::OnboardingStarted
            | Payload::StepCompleted(_)
            | Payload::OnboardingCompleted
            | Payload::Recipe => ONBOARDING,
            Payload::TicketCreated(..) | Payload::TicketResolved(_) => SUPPORT_LOAD,
            Payload::Survey { .. } => SENTIMENT,
            Payload::Invoice(..) => BILLING,
            Payload::Contract(_) | Payload::Measured | Payload::Unhandled => 0,
        }
    }
}

pub struct Buckets {
    pub login_window: i64,
    pub error_window: i64,
    pub origin: i64,
    pub max_keys: usize,
}

pub struct Tenant {
    pub tenant_id: Arc<str>,
    pub py_id: Py<PyString>,
    pub first_seen: i64,
    pub segment: Option<String>,
    pub sessions_by_window: HashMap<i64, i64>,
    pub errors_by_window: HashMap<i64, i64>,
    pub open_tickets: HashMap<String, String>,
    pub tickets_seen: bool,
    pub nps: Option<f64>,
    pub csat: Option<f64>,
    pub unpaid_invoices: HashMap<String, String>,
    pub invoices_seen: bool,
    pub integrations: HashMap<String, String>,
    pub seats: Option<Py<PyAny>>,
    pub onboarding_started: Option<i64>,
    pub onboarding_completed: bool,
    pub onboarding_steps: HashSet<String>,
    pub last_progress: Option<i64>,
    pub stall_signalled_at: Option<i64>,
    pub score: Option<i64>,
    pub zone: Option<&'static str>,
    pub zone_announced: Option<&'static str>,
    pub reasons: String,
    pub measures: [Measure; COMPONENTS],
    pub stale: u32,
    pub recent_scores: Vec<(i64, f64)>,
    pub cooldowns: Option<Py<PyDict>>,
    pub last_event_at: i64,
    /// The declared measures' states (crate::declared), and a bit per declared signal
    /// the tenant's measures cross now.
    pub measured: Vec<crate::measures::State>,
    pub declared_active: u64,
    /// The declared health components' measures (crate::components), in declaration
    /// order.
    pub components: Vec<Measure>,
}

impl Tenant {
    pub fn new(tenant_id: Arc<str>, py_id: Py<PyString>, first_seen: i64) -> Self {
        Tenant {
            tenant_id,
            py_id,
            first_seen,
            segment: None,
            sessions_by_window: HashMap::default(),
            errors_by_window: HashMap::default(),
            open_tickets: HashMap::default(),
            tickets_seen: false,
            nps: None,
            csat: None,
            unpaid_invoices: HashMap::default(),
            invoices_seen: false,
            integrations: HashMap::default(),
            seats: None,
            onboarding_started: None,
            onboarding_completed: false,
            onboarding_steps: HashSet::default(),
            last_progress: None,
            stall_signalled_at: None,
            score: None,
            zone: None,
            zone_announced: None,
            reasons: String::new(),
            measures: [None; COMPONENTS],
            stale: ALL_STALE,
            recent_scores: Vec::new(),
            cooldowns: None,
            last_event_at: 0,
            measured: Vec::new(),
            declared_active: 0,
            components: Vec::new(),
        }
    }

    pub fn onboarding_open(&self) -> bool {
        self.onboarding_started.is_some() && !self.onboarding_completed
    }

    /// Fold one event in (TenantState.apply); returns its effects.
    /// The caller has set the segment the event names.
    pub fn apply(&mut self, ts: i64, payload: Payload, buckets: &Buckets) -> u32 {
        self.last_event_at = ts;
        if let Payload::Unhandled = payload {
            return 0;
        }
        self.stale |= payload.touches();
        match payload {
            Payload::Session => {
                let window = floor_to(ts, buckets.login_window, buckets.origin);
                *self.sessions_by_window.entry(window).or_insert(0) += 1;
                0
            }
            Payload::Error => {
                let window = floor_to(ts, buckets.error_window, buckets.origin);
                *self.errors_by_window.entry(window).or_insert(0) += 1;
                ERRORS
            }
            Payload::Integration(name, state) => {
                put(&mut self.integrations, name, state, buckets.max_keys)
            }
            Payload::OnboardingStarted => {
                if self.onboarding_started.is_some() {
                    return 0; // a resent start does not restart the clock
                }
                self.onboarding_started = Some(ts);
                self.last_progress = Some(ts);
                ONBOARDING_CLOCK
            }
            Payload::StepCompleted(step) => {
                let mut refused = 0;
                if self.onboarding_steps.len() < buckets.max_keys
                    || self.onboarding_steps.contains(&step)
                {
                    self.onboarding_steps.insert(step);
                } else {
                    refused = KEY_REFUSED; // still progress: the stall clock restarts
                }
                self.progress(ts) | refused
            }
            Payload::Recipe => self.progress(ts),
            Payload::OnboardingCompleted => {
                self.onboarding_completed = true;
                0
            }
            Payload::TicketCreated(id, priority) => {
                self.tickets_seen = true;
                put(&mut self.open_tickets, id, priority, buckets.max_keys)
            }
            Payload::TicketResolved(id) => {
                self.tickets_seen = true;
                self.open_tickets.remove(&id);
                0
            }
            Payload::Survey { nps, score } => {
                if nps {
                    self.nps = Some(score);
                } else {
                    self.csat = Some(score);
                }
                0
            }
            Payload::Invoice(id, status) => {
                self.invoices_seen = true;
                if status == "overdue" || status == "failed" {
                    return put(&mut self.unpaid_invoices, id, status, buckets.max_keys);
                }
                self.unpaid_invoices.remove(&id); // issued or paid: forget it
                0
            }
            Payload::Contract(seats) => {
                if seats.is_some() {
                    self.seats = seats;
                }
                0
            }
            Payload::Measured | Payload::Unhandled => 0,
        }
    }

    fn progress(&mut self, ts: i64) -> u32 {
        if !self.onboarding_open() {
            return 0;
        }
        self.last_progress = Some(ts);
        ONBOARDING_CLOCK
    }

    /// Drop the login windows before `keep_from_window`.
    pub fn prune(&mut self, keep_from_window: i64) {
        self.sessions_by_window
            .retain(|window, _| *window >= keep_from_window);
    }
}

fn put<V>(keyed: &mut HashMap<String, V>, key: String, value: V, max_keys: usize) -> u32 {
    if keyed.len() >= max_keys && !keyed.contains_key(&key) {
        return KEY_REFUSED;
    }
    keyed.insert(key, value);
    0
}

/// A zone's name as the engine keeps it (one static string per zone).
pub fn zone_name(zone: &str) -> PyResult<&'static str> {
    match zone {
        "green" => Ok("green"),
        "yellow" => Ok("yellow"),
        "orange" => Ok("orange"),
        "red" => Ok("red"),
        other => Err(pyo3::exceptions::PyValueError::new_err(format!(
            "not a zone: {other:?}"
        ))),
    }
}

pub fn measure_to_py<'py>(py: Python<'py>, measure: Measure) -> PyResult<Bound<'py, PyAny>> {
    Ok(match measure {
        None => py.None().into_bound(py),
        Some((Val::Int(n), share)) => (n, share).into_pyobject(py)?.into_any(),
        Some((Val::Float(x), share)) => (x, share).into_pyobject(py)?.into_any(),
    })
}

pub fn measure_from_py(obj: &Bound<'_, PyAny>) -> PyResult<Measure> {
    if obj.is_none() {
        return Ok(None);
    }
    let (value, share): (Bound<'_, PyAny>, f64) = obj.extract()?;
    let value = if value.is_instance_of::<pyo3::types::PyInt>() {
        Val::Int(value.extract()?)
    } else {
        Val::Float(value.extract()?)
    };
    Ok(Some((value, share)))
}

macro_rules! tenant_fields {
    ($m:ident) => {
        $m!(
            first_seen,
            segment,
            sessions_by_window,
            errors_by_window,
            open_tickets,
            tickets_seen,
            nps,
            csat,
            unpaid_invoices,
            invoices_seen,
            integrations,
            onboarding_started,
            onboarding_completed,
            onboarding_steps,
            last_progress,
            stall_signalled_at,
            score,
            reasons,
            stale,
            recent_scores,
            last_event_at
        )
    };
}

impl Tenant {
    /// The tenant as vigil.engine.tenant.TenantState, for a snapshot (`cls` is that class).
    pub fn to_py<'py>(
        &self,
        py: Python<'py>,
        cls: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let obj = cls.call1((&*self.tenant_id, self.first_seen))?;
        macro_rules! set {
            ($($name:ident),*) => { $( obj.setattr(stringify!($name), &self.$name)?; )* };
        }
        tenant_fields!(set);
        obj.setattr("seats", self.seats.as_ref().map(|s| s.bind(py)))?;
        obj.setattr("zone", self.zone)?;
        obj.setattr("zone_announced", self.zone_announced)?;
        let measures = self
            .measures
            .iter()
            .map(|m| measure_to_py(py, *m))
            .collect::<PyResult<Vec<_>>>()?;
        obj.setattr("measures", measures)?;
        let cooldowns = match &self.cooldowns {
            Some(dict) => dict.bind(py).clone(),
            None => PyDict::new(py),
        };
        obj.setattr("cooldowns", cooldowns)?;
        Ok(obj)
    }

    /// A TenantState from a snapshot.
    pub fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        let id_obj = obj.getattr("tenant_id")?;
        let tenant_id: String = id_obj.extract()?;
        let mut t = Tenant::new(
            tenant_id.into(),
            id_obj.cast_into::<PyString>()?.unbind(),
            obj.getattr("first_seen")?.extract()?,
        );
        macro_rules! get {
            ($($name:ident),*) => { $( t.$name = obj.getattr(stringify!($name))?.extract()?; )* };
        }
        tenant_fields!(get);
        let seats = obj.getattr("seats")?;
        t.seats = if seats.is_none() {
            None
        } else {
            Some(seats.unbind())
        };
        let zone: Option<String> = obj.getattr("zone")?.extract()?;
        t.zone = zone.as_deref().map(zone_name).transpose()?;
        let announced: Option<String> = obj.getattr("zone_announced")?.extract()?;
        t.zone_announced = announced.as_deref().map(zone_name).transpose()?;
        let measures: Vec<Bound<'_, PyAny>> = obj.getattr("measures")?.extract()?;
        if measures.len() != COMPONENTS {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "measures of another version",
            ));
        }
        for (index, measure) in measures.iter().enumerate() {
            t.measures[index] = measure_from_py(measure)?;
        }
        let cooldowns = obj.getattr("cooldowns")?.cast_into::<PyDict>()?;
        t.cooldowns = Some(cooldowns.unbind());
        Ok(t)
    }
}
