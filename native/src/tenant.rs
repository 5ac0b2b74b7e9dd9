//! A tenant's state: its declared measures, its components' measures, its score and
//! the rules' bookkeeping. A snapshot saves it as vigil.engine.tenant.TenantState.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use thin_vec::ThinVec;

pub const MS_PER_HOUR: i64 = 3_600_000;
pub const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;

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

pub struct Tenant {
    pub tenant_id: Arc<str>,
    pub py_id: Py<PyString>,
    pub first_seen: i64,
    /// Shared with the queue and the other tenants of the segment.
    pub segment: Option<Py<PyString>>,
    pub score: Option<i64>,
    pub zone: Option<&'static str>,
    pub zone_announced: Option<&'static str>,
    pub reasons: Arc<str>,
    /// A bit per component (its place in health records): measure it again.
    pub stale: u32,
    pub recent_scores: ThinVec<(i64, f64)>,
    pub cooldowns: Option<Py<PyDict>>,
    pub last_event_at: i64,
    /// An event of it was applied since it was last scored (its components are then all
    /// measured afresh); else it is silent, and silence raises no component
    /// (crate::score). Never saved: a step applies and scores.
    pub heard: bool,
    /// A bit per component to measure afresh even while silent (declared anew since the
    /// store was saved). Never saved either.
    pub afresh: u32,
    /// The declared measures' states (crate::declared), and a bit per declared signal
    /// the tenant's measures cross now.
    pub measured: Box<[crate::measures::State]>,
    pub declared_active: u64,
    /// The health components' measures (crate::components), in the order of health
    /// records.
    pub components: Box<[Measure]>,
}

impl Tenant {
    pub fn new(tenant_id: Arc<str>, py_id: Py<PyString>, first_seen: i64) -> Self {
        Tenant {
            tenant_id,
            py_id,
            first_seen,
            segment: None,
            score: None,
            zone: None,
            zone_announced: None,
            reasons: "".into(),
            stale: 0,
            recent_scores: ThinVec::new(),
            cooldowns: None,
            last_event_at: 0,
            heard: false,
            afresh: 0,
            measured: Box::default(),
            declared_active: 0,
            components: Box::default(),
        }
    }
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
        $m!(first_seen, segment, score, stale, last_event_at)
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
        obj.setattr("reasons", &*self.reasons)?;
        obj.setattr("recent_scores", self.recent_scores.to_vec())?;
        obj.setattr("zone", self.zone)?;
        obj.setattr("zone_announced", self.zone_announced)?;
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
        if let Some(segment) = &t.segment {
            // one string per segment, as a running shard shares it
            t.segment = Some(PyString::intern(obj.py(), segment.bind(obj.py()).to_str()?).unbind());
        }
        t.reasons = obj.getattr("reasons")?.extract::<String>()?.into();
        t.recent_scores = obj
            .getattr("recent_scores")?
            .extract::<Vec<(i64, f64)>>()?
            .into();
        let zone: Option<String> = obj.getattr("zone")?.extract()?;
        t.zone = zone.as_deref().map(zone_name).transpose()?;
        let announced: Option<String> = obj.getattr("zone_announced")?.extract()?;
        t.zone_announced = announced.as_deref().map(zone_name).transpose()?;
        let cooldowns = obj.getattr("cooldowns")?.cast_into::<PyDict>()?;
        t.cooldowns = Some(cooldowns.unbind());
        Ok(t)
    }
}
