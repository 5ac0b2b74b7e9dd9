//! What the core finds that needs words or rules: it hands these to the shard's policy
//! (vigil.engine.policy), in order among the health records, instead of calling into
//! Python. Each carries what the policy needs, as it was when it was found.

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// A tenant as a fact about it describes it, when the finding was made: its segment,
/// score, zone and the reasons for the score, and the rules' cooldowns for it (a dict
/// the policy updates in place).
#[pyclass(frozen, get_all, module = "vigil._native")]
pub struct Context {
    pub segment: Option<String>,
    pub score: Option<i64>,
    pub zone: Option<&'static str>,
    pub reasons: String,
    pub cooldowns: Py<PyDict>,
}

/// An event older than the watermark it arrived under.
#[pyclass(frozen, get_all, module = "vigil._native")]
pub struct Late {
    pub event: Py<PyAny>,
}

/// A signal's measure crossed its bound at `at`: `signal` is its place in the
/// declarations; `measured` and `other` what was compared (numbers or text; for a
/// history, the percentile's value); for a history, how many past windows it was
/// compared with and what they held in all; for a stalled process, when it started and
/// last progressed.
#[pyclass(frozen, get_all, module = "vigil._native")]
pub struct Crossed {
    pub tenant_id: String,
    pub signal: usize,
    pub measured: Py<PyAny>,
    pub other: Py<PyAny>,
    pub history: Option<(usize, f64)>,
    pub stalled: Option<(i64, i64)>,
    pub at: i64,
    pub context: Py<Context>,
}

/// A signal that held for a tenant at its last evaluation holds no more at `at` (its
/// measure came back within bounds): what a task opened on it may close on.
#[pyclass(frozen, get_all, module = "vigil._native")]
pub struct Cleared {
    pub tenant_id: String,
    pub signal: usize,
    pub at: i64,
}

/// A step of event time is done: what falls due at `at` (a task's SLA, a close held
/// long enough) is due now, after everything the step found.
#[pyclass(frozen, get_all, module = "vigil._native")]
pub struct Stepped {
    pub at: i64,
}

/// A warm tenant's zone changed from the one last handed to the rules.
#[pyclass(frozen, get_all, module = "vigil._native")]
pub struct ZoneChanged {
    pub tenant_id: String,
    pub at: i64,
    pub score: i64,
    pub zone: &'static str,
    pub from_zone: Option<&'static str>,
    pub context: Py<Context>,
}

/// A warm tenant's score fell `drop_pct` percent or more below its peak over the drop
/// window (which holds the score in force as the window opened).
#[pyclass(frozen, get_all, module = "vigil._native")]
pub struct ScoreDropped {
    pub tenant_id: String,
    pub at: i64,
    pub score: i64,
    pub zone: &'static str,
    pub peak: f64,
    pub context: Py<Context>,
}

/// A tenant's declared measure (`measure`) held as many keys as it may, and a new key
/// was not kept.
#[pyclass(frozen, get_all, module = "vigil._native")]
pub struct KeyRefused {
    pub measure: String,
    pub tenant_id: String,
    pub key: Option<String>,
    pub at: i64,
}

/// Midnight in event time, after the tenants silent for too long were let go.
#[pyclass(frozen, get_all, module = "vigil._native")]
pub struct DayEnded {
    pub at: i64,
    pub forgotten: Vec<String>,
}

pub fn add_classes(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Context>()?;
    m.add_class::<Late>()?;
    m.add_class::<Crossed>()?;
    m.add_class::<Cleared>()?;
    m.add_class::<Stepped>()?;
    m.add_class::<ZoneChanged>()?;
    m.add_class::<ScoreDropped>()?;
    m.add_class::<KeyRefused>()?;
    m.add_class::<DayEnded>()?;
    Ok(())
}
