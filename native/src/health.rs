//! Health records: a tenant scored, its zone, the record written with its components
//! and reasons, and the zone changes and score drops handed to the policy.

use std::sync::Arc;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::findings;
use crate::fmt::{self, py_round};
use crate::ids;
use crate::score::measure_key;
use crate::tenant::{Measure, Val};
use crate::ShardCore;

impl ShardCore {
    /// to_iso as a Python string; the step's instant is asked for by every record of it.
    pub(crate) fn iso<'py>(&mut self, py: Python<'py>, ms: i64) -> PyResult<Bound<'py, PyAny>> {
        if let Some((at, text)) = &self.last_iso {
            if *at == ms {
                return Ok(text.bind(py).clone().into_any());
            }
        }
        let text = match fmt::to_iso(ms) {
            Some(text) => PyString::new(py, &text),
            None => self.to_iso.bind(py).call1((ms,))?.cast_into::<PyString>()?,
        };
        self.last_iso = Some((ms, text.clone().unbind()));
        Ok(text.into_any())
    }

    /// The tenant as a fact about it describes it now; the rules' cooldowns for it may
    /// change, so it counts as touched.
    pub(crate) fn context(
        &mut self,
        py: Python<'_>,
        index: usize,
    ) -> PyResult<Py<findings::Context>> {
        let t = &mut self.store.tenants[index];
        self.store.touched.insert(t.tenant_id.clone());
        let cooldowns = t.cooldowns.get_or_insert_with(|| PyDict::new(py).unbind());
        let context = findings::Context {
            segment: t.segment.as_ref().map(|s| s.to_string()),
            score: t.score,
            zone: t.zone,
            reasons: t.reasons.to_string(),
            cooldowns: cooldowns.clone_ref(py),
        };
        Py::new(py, context)
    }

    pub(crate) fn score(
        &mut self,
        py: Python<'_>,
        index: usize,
        now: i64,
        out: &Bound<'_, PyList>,
        reweigh: bool,
        measuring: bool,
    ) -> PyResult<()> {
        let cut = self.cfg.zones;
        let tenant = &mut self.store.tenants[index];
        let exact = self
            .scorer
            .rescore(tenant, &self.declared, now, reweigh, measuring);
        let mut health = None;
        if let Some(exact) = exact {
            let rounded = (exact + 0.5).trunc() as i64;
            let zone = zone_of(exact, &cut);
            if Some(rounded) != tenant.score || Some(zone) != tenant.zone {
                health = Some((exact, rounded, zone));
                self.record_health(py, index, rounded, zone, now, out)?;
            }
        }
        let tenant = &self.store.tenants[index];
        let Some(zone) = tenant.zone else {
            return Ok(());
        };
        // Enough history to call a zone or a drop.
        let warm = now - tenant.first_seen >= self.cfg.warmup;
        if warm && Some(zone) != tenant.zone_announced {
            let from_zone = tenant.zone_announced;
            let score = tenant.score.expect("scored");
            let context = self.context(py, index)?;
            let tenant = &mut self.store.tenants[index];
            tenant.zone_announced = Some(zone);
            let changed = findings::ZoneChanged {
                tenant_id: tenant.tenant_id.to_string(),
                at: now,
                score,
                zone,
                from_zone,
                context,
            };
            out.append(Py::new(py, changed)?)?;
        }
        if let Some((exact, rounded, zone)) = health {
            self.check_score_drop(py, index, (exact, rounded, zone), now, out, warm)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn record_health(
        &mut self,
        py: Python<'_>,
        index: usize,
        rounded: i64,
        zone: &'static str,
        now: i64,
        out: &Bound<'_, PyList>,
    ) -> PyResult<()> {
        self.store.set_zone(index, zone);
        let tenant = &mut self.store.tenants[index];
        tenant.score = Some(rounded);
        let measures = self.scorer.all_measures(tenant);
        let weights = self
            .scorer
            .weights(&measures)
            .expect("a score was computed from them");
        let tenant = &self.store.tenants[index];
        let components = PyDict::new(py);
        for index in 0..self.scorer.total() {
            let key = measure_key(index, measures[index], weights[index]);
            let entry = match self.entries.get(&key) {
                Some(entry) => entry.bind(py).clone(),
                None => {
                    let entry = component_entry(py, measures[index], weights[index])?;
                    if self.entries.len() >= self.scorer.memo_size {
                        self.entries.clear(); // bounded (vigil.engine.shard.MEMO_SIZE)
                    }
                    self.entries.insert(key, entry.clone().unbind());
                    entry
                }
            };
            components.set_item(self.names[index].bind(py), entry)?;
        }
        let mut said = self
            .scorer
            .reasons(tenant, &self.declared, &measures, &weights, now);
        let until = tenant.first_seen + self.cfg.warmup;
        let py_id = tenant.py_id.clone_ref(py);
        let tenant_id = tenant.tenant_id.clone();
        let reasons_kept = said.join("; ");
        let ts = self.iso(py, now)?;
        if now < until {
            let when = match fmt::to_iso(until) {
                Some(text) => text,
                None => self.to_iso.bind(py).call1((until,))?.extract()?,
            };
            said.push(format!(
                "new account, warming up until {when}: its zone and score drops are not handed to the rules before then"
            ));
        }
        let record = PyDict::new(py);
        let id = ids::stable_id(
            "health",
            &[
                &tenant_id,
                ts.cast::<PyString>()?.to_str()?,
                &rounded.to_string(),
                zone,
            ],
        );
        record.set_item(intern!(py, "health_id"), id)?;
        record.set_item(intern!(py, "tenant_id"), py_id)?;
        record.set_item(intern!(py, "ts"), ts)?;
        record.set_item(intern!(py, "score"), rounded)?;
        record.set_item(intern!(py, "zone"), zone_str(py, zone))?;
        record.set_item(intern!(py, "components"), &components)?;
        let reasons = PyList::new(py, said)?;
        record.set_item(intern!(py, "reasons"), &reasons)?;
        self.store.tenants[index].reasons = self.shared_reasons(reasons_kept);
        untrack(components.as_any());
        untrack(reasons.as_any());
        untrack(record.as_any());
        out.append((intern!(py, "health"), record))?;
        Ok(())
    }

    /// The reasons a tenant keeps for its facts, shared with the tenants whose reasons
    /// read the same (many do: the same counts give the same words). Bounded as the
    /// other caches: emptied when full, the tenants keeping theirs.
    fn shared_reasons(&mut self, reasons: String) -> Arc<str> {
        if let Some(shared) = self.reasons.get(reasons.as_str()) {
            return shared.clone();
        }
        if self.reasons.len() >= self.scorer.memo_size {
            self.reasons.clear();
        }
        let shared: Arc<str> = reasons.into();
        self.reasons.insert(shared.clone());
        shared
    }

    #[allow(clippy::too_many_arguments)]
    fn check_score_drop(
        &mut self,
        py: Python<'_>,
        index: usize,
        (score, rounded, zone): (f64, i64, &'static str),
        now: i64,
        out: &Bound<'_, PyList>,
        warm: bool,
    ) -> PyResult<()> {
        let since = now - self.cfg.drop_window;
        let tenant = &self.store.tenants[index];
        // The scores recorded since the window opened, and the one in force as it opened:
        // a score is recorded when it changes, so a flat one was recorded before the window.
        let opened = tenant.recent_scores.partition_point(|(t, _)| *t < since);
        let mut recent: thin_vec::ThinVec<(i64, f64)> =
            tenant.recent_scores[opened.saturating_sub(1)..].into();
        let peak = recent
            .iter()
            .map(|(_, s)| *s)
            .reduce(fmt::py_max)
            .unwrap_or(score);
        if warm && peak > 0.0 && score <= peak * (1.0 - self.cfg.drop_pct / 100.0) {
            recent.clear(); // a continuing fall must lose drop_pct again to re-fire
            let dropped = findings::ScoreDropped {
                tenant_id: tenant.tenant_id.to_string(),
                at: now,
                score: rounded,
                zone,
                peak,
                context: self.context(py, index)?,
            };
            out.append(Py::new(py, dropped)?)?;
        }
        while recent.last().is_some_and(|(_, s)| *s <= score) {
            recent.pop();
        }
        recent.push((now, score));
        self.store.tenants[index].recent_scores = recent;
        Ok(())
    }
}

fn zone_of(score: f64, cut: &[f64; 3]) -> &'static str {
    let rounded = (score + 0.5).trunc();
    if rounded >= cut[0] {
        "green"
    } else if rounded >= cut[1] {
        "yellow"
    } else if rounded >= cut[2] {
        "orange"
    } else {
        "red"
    }
}

/// Takes a part of a health record out of Python's cycle collector: a record holds
/// strings, numbers and containers of those only, and is never changed once made, so
/// it can be in no cycle; tracked, every young-generation collection walks every record
/// not yet written (CPython untracks such tuples and dicts itself, but only once a
/// collection has walked them).
fn untrack(container: &Bound<'_, PyAny>) {
    // SAFETY: a live object we hold a reference to, of a type the collector tracks.
    unsafe { pyo3::ffi::PyObject_GC_UnTrack(container.as_ptr().cast()) }
}

/// A zone's name, as one Python string for every record.
fn zone_str<'py>(py: Python<'py>, zone: &str) -> &'py Bound<'py, PyString> {
    match zone {
        "green" => intern!(py, "green"),
        "yellow" => intern!(py, "yellow"),
        "orange" => intern!(py, "orange"),
        _ => intern!(py, "red"),
    }
}

fn component_entry<'py>(
    py: Python<'py>,
    measure: Measure,
    weight: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let entry = PyDict::new(py);
    match measure {
        None => {
            entry.set_item(intern!(py, "value"), py.None())?;
            entry.set_item(intern!(py, "weight"), py_round(weight, 2))?;
            entry.set_item(intern!(py, "points"), 0.0)?;
        }
        Some((value, share)) => {
            match value {
                Val::Int(n) => entry.set_item(intern!(py, "value"), n)?,
                Val::Float(x) => entry.set_item(intern!(py, "value"), x)?,
            }
            entry.set_item(intern!(py, "weight"), py_round(weight, 2))?;
            entry.set_item(intern!(py, "points"), py_round(weight * share, 2))?;
        }
    }
    Ok(entry)
}
