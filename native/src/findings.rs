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

/// Sessions in a closed login window fell below `drop_ratio` of the window before.
#[pyclass(frozen, get_all, module = "vigil._native")]
pub struct LoginDrop {
    pub tenant_id: String,
    pub sessions: i64,
    pub previous: i64,
    pub start: i64,
    pub end: i64,
    pub context: Py<Context>,
}

/// Errors in a closed window above the percentile of the tenant's own past windows.
#[pyclass(frozen, get_all, module = "vigil._native")]
pub struct ErrorSpike {
    pub tenant_id: String,
    pub errors: i64,
    /// The percentile's value over the past windows, their number and their errors.
    pub percentile_value: f64,
    pub windows: usize,
    pub past_errors: i64,
    pub start: i64,
    pub end: i64,
    pub context: Py<Context>,
}

/// An onboarding made no progress for `stall_after` before `deadline`.
#[pyclass(frozen, get_all, module = "vigil._native")]
pub struct OnboardingStall {
    pub tenant_id: String,
    pub started: i64,
    pub last_progress: i64,
    pub deadline: i64,
    pub steps: usize,
    pub context: Py<Context>,
}

/// A declared signal's measure crossed its bound at `at`: `signal` is its place in
/// the declarations; `measured` and `other` what was compared (numbers or text; for a
/// history, the percentile's value), and for a history, how many past windows it was
/// compared with and what they held in all.
#[pyclass(frozen, get_all, module = "vigil._native")]
pub struct Crossed {
    pub tenant_id: String,
    pub signal: usize,
    pub measured: Py<PyAny>,
    pub other: Py<PyAny>,
    pub history: Option<(usize, f64)>,
    pub at: i64,
    pub context: Py<Context>,
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

/// A warm tenant's score fell `drop_points` or more below its peak over the drop window.
#[pyclass(frozen, get_all, module = "vigil._native")]
pub struct ScoreDropped {
    pub tenant_id: String,
    pub at: i64,
    pub score: i64,
    pub zone: &'static str,
    pub peak: f64,
    pub context: Py<Context>,
}

/// A tenant's map (of `event_type`'s keys) or a declared measure (`measure`) was full,
/// and a new key was not kept.
#[pyclass(frozen, get_all, module = "vigil._native")]
pub struct KeyRefused {
    pub event_type: Option<String>,
    pub measure: Option<String>,
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
    m.add_class::<LoginDrop>()?;
    m.add_class::<ErrorSpike>()?;
    m.add_class::<OnboardingStall>()?;
    m.add_class::<Crossed>()?;
    m.add_class::<ZoneChanged>()?;
    m.add_class::<ScoreDropped>()?;
    m.add_class::<KeyRefused>()?;
    m.add_class::<DayEnded>()?;
    Ok(())
}
