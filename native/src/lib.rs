//! Vigil's shard engine: the event-time core (de-duplication, the queue, the clock,
//! tenant state, windows, scoring and health records) on typed data. What it finds
//! that needs words or rules (signals, zone changes, score drops, late events, keys
//! refused, the end of a day) it returns among the health records as findings
//! (findings.rs), which the shard's policy, vigil.engine.policy.Policy, turns into
//! records, facts, the rules' actions and logs. tests/unit/test_golden.py pins the outputs on simulated streams.

mod clock;
mod components;
mod declared;
mod dedup;
mod event;
mod findings;
mod fmt;
mod health;
mod ids;
mod intake;
mod measures;
mod queue;
mod restore;
mod score;
mod signals;
mod split;
mod store;
mod tenant;

use std::sync::Arc;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use fmt::floor_div;
use queue::{life_order, Pending, Queue, Queued};
use score::Scorer;
use tenant::{Tenant, MS_PER_DAY};

struct Settings {
    step: i64,
    warmup: i64,
    drop_window: i64,
    drop_pct: f64,
    zones: [f64; 3],
    dedup_retention: i64,
    forget_after: i64,
    max_keys: usize,
}

#[pyclass]
struct ShardCore {
    event_type: Py<PyAny>,
    to_iso: Py<PyAny>,
    known: HashSet<String>,
    cfg: Settings,
    scorer: Scorer,
    store: store::Store,
    queue: Queue,
    seen: dedup::Seen,
    clock: clock::Clock,
    reweigh: bool,
    duplicates: i64,
    late: i64,
    unknown_types: i64,
    type_counts: HashMap<String, i64>,
    entries: HashMap<(usize, u64, u64, u64), Py<PyDict>>,
    // Tenants' reasons, shared by their text (see `shared_reasons`).
    reasons: HashSet<Arc<str>>,
    last_iso: Option<(i64, Py<PyString>)>,
    // The components' names as Python strings, made once for every record's keys.
    names: Vec<Py<PyString>>,
    // The stale bits of the components reading each declared measure.
    readers: Vec<u32>,
    // The components over measures whose windows move between midnights, or processes
    // that stall: measured again when those move (see Spec::moves) or stall.
    moving_readers: u32,
    // The components whose measures' values move with time: measured again at midnight.
    timed_readers: u32,
    // The measures and signals declared in the settings.
    declared: declared::Declared,
    // Their signals' names, in declaration order.
    declared_names: Vec<String>,
    // The event types and segments queued events share (see `shared`).
    shared_names: HashMap<String, Py<PyString>>,
}

fn get<'py, T: FromPyObjectOwned<'py>>(obj: &Bound<'py, PyAny>, path: &str) -> PyResult<T> {
    let mut at = obj.clone();
    for name in path.split('.') {
        at = at.getattr(name)?;
    }
    at.extract().map_err(Into::into)
}

#[pymethods]
impl ShardCore {
    #[new]
    #[allow(clippy::too_many_arguments)] // what vigil.engine.shard hands over, once per shard
    fn new(
        settings: &Bound<'_, PyAny>,
        event_type: Py<PyAny>,
        tick_type: &Bound<'_, PyAny>,
        to_iso: Py<PyAny>,
        known: HashSet<String>,
        memo_size: usize,
        declared: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let py = settings.py();
        event::check_fields(event_type.bind(py), &event::EVENT_FIELDS)?;
        event::check_fields(tick_type, &event::TICK_FIELDS)?;
        let mut declared_core = declared::Declared::new(
            declared.getattr("measures")?.extract()?,
            declared.getattr("conditions")?.extract()?,
        )?;
        let components = declared
            .getattr("components")?
            .extract::<Vec<components::ComponentSpec>>()?
            .into_iter()
            .map(|spec| components::Component::new(&mut declared_core, spec))
            .collect::<PyResult<Vec<_>>>()?;
        if components.len() > score::MAX_COMPONENTS {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "at most {} health components in all",
                score::MAX_COMPONENTS
            )));
        }
        // The components' names as record keys.
        let record_names: Vec<Py<PyString>> = components
            .iter()
            .map(|c| PyString::intern(py, &c.name).unbind())
            .collect();
        let scorer = Scorer::new(components, memo_size);
        let readers = scorer.readers(declared_core.len());
        let read_by = |moving: &dyn Fn(usize) -> bool| {
            (0..declared_core.len())
                .filter(|m| moving(*m))
                .fold(0u32, |bits, m| bits | readers[m])
        };
        let moving_readers =
            read_by(&|m| declared_core.moves_within_days(m) || declared_core.stalls(m));
        let timed_readers = read_by(&|m| declared_core.varies_with_time(m));
        let cfg = Settings {
            step: get(settings, "engine.health_step")?,
            warmup: get(settings, "health.warmup")?,
            drop_window: get(settings, "health.drop_window")?,
            drop_pct: get(settings, "health.drop_pct")?,
            zones: [
                get(settings, "health.zones.green")?,
                get(settings, "health.zones.yellow")?,
                get(settings, "health.zones.orange")?,
            ],
            dedup_retention: get(settings, "dedup_retention")?,
            forget_after: get(settings, "engine.forget_tenants_after")?,
            max_keys: get(settings, "engine.max_keys_per_tenant")?,
        };
        Ok(ShardCore {
            clock: clock::Clock::new(cfg.step),
            event_type,
            to_iso,
            known,
            scorer,
            readers,
            cfg,
            store: store::Store::default(),
            queue: Queue::default(),
            seen: dedup::Seen::default(),
            reweigh: false,
            duplicates: 0,
            late: 0,
            unknown_types: 0,
            type_counts: HashMap::default(),
            entries: HashMap::default(),
            reasons: HashSet::default(),
            last_iso: None,
            names: record_names,
            moving_readers,
            timed_readers,
            declared: declared_core,
            declared_names: declared.getattr("signals")?.extract()?,
            shared_names: HashMap::default(),
        })
    }

    /// ShardEngine.process: events and ticks in, outputs (stream, record) out.
    fn process<'py>(
        &mut self,
        py: Python<'py>,
        items: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        let event_type = self.event_type.bind(py).clone();
        let note_type = py.get_type::<PyTuple>();
        for item in items.try_iter()? {
            let item = item?;
            let kind = item.get_type();
            if kind.is(&event_type) {
                self.accept(py, &item, &out)?;
            } else if kind.is(&note_type) {
                // what the fleet used (vigil._native.ShardSplitter): applied at its step
                for entry in item.try_iter()? {
                    let (measure, value, at): (String, String, i64) = entry?.extract()?;
                    self.declared.note_fleet(&measure, value.into(), at);
                }
            } else {
                self.tick(py, &item, &out)?;
            }
        }
        Ok(out)
    }

    /// The tallies since the last call (duplicates, late events, unknown types); reset.
    fn take_counts<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let counts = PyDict::new(py);
        for (name, value) in [
            ("duplicates", &mut self.duplicates),
            ("late", &mut self.late),
            ("unknown_types", &mut self.unknown_types),
        ] {
            if *value != 0 {
                counts.set_item(name, *value)?;
                *value = 0;
            }
        }
        Ok(counts)
    }

    /// The events accepted by type since the last call; reset.
    fn take_type_counts<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let types = PyDict::new(py);
        for (kind, value) in self.type_counts.drain() {
            types.set_item(kind, value)?;
        }
        Ok(types)
    }

    #[getter]
    fn tenant_count(&self) -> usize {
        self.store.tenants.len()
    }

    #[getter]
    fn pending_count(&self) -> usize {
        self.queue.len()
    }

    #[getter]
    fn watermark(&self) -> Option<i64> {
        self.clock.watermark
    }

    #[getter]
    fn zones(&self) -> HashMap<&'static str, i64> {
        self.store.zones.clone()
    }

    /// How many component entries, reason lines and tenants' reasons are cached (for
    /// tests).
    #[getter]
    fn cached(&self) -> (usize, usize, usize) {
        (
            self.entries.len(),
            self.scorer.cached_lines(),
            self.reasons.len(),
        )
    }

    // -- snapshots and restore (vigil.engine.snapshots, vigil.engine.shard) ---------------------

    /// The tenants' ids, in the order the engine visits them.
    fn tenant_ids(&self) -> Vec<&str> {
        self.store.tenants.keys().map(|id| &**id).collect()
    }

    /// A tenant as vigil.engine.tenant.TenantState (`cls`), None if it is not held.
    fn export_tenant<'py>(
        &self,
        py: Python<'py>,
        tenant_id: &str,
        cls: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(tenant) = self.store.tenants.get(tenant_id) else {
            return Ok(None);
        };
        let obj = tenant.to_py(py, cls)?;
        obj.setattr("measured", self.declared.to_py(py, &tenant.measured)?)?;
        let raised: Vec<&str> = self
            .declared_names
            .iter()
            .enumerate()
            .filter(|(index, _)| tenant.declared_active & (1 << index) != 0)
            .map(|(_, name)| name.as_str())
            .collect();
        obj.setattr("signals_raised", raised)?;
        let components = PyDict::new(py);
        for (component, measure) in self.scorer.components.iter().zip(&tenant.components) {
            let measure = tenant::measure_to_py(py, *measure)?;
            components.set_item(&component.name, (&component.digest, measure))?;
        }
        obj.setattr("components", components)?;
        Ok(Some(obj))
    }

    /// The tenants changed since the last call (touched, and applied but not re-scored).
    fn take_changed(&mut self) -> Vec<String> {
        self.store.take_changed()
    }

    /// Every tenant counts as changed (none is saved yet).
    fn touch_all(&mut self) {
        self.store.touch_all();
    }

    /// ShardState's fields but the tenants and the ids seen (and those the Python side
    /// keeps: layout, scored_with).
    fn plain_state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let state = PyDict::new(py);
        let pending = PyList::empty(py);
        for Pending {
            ts,
            life,
            key,
            item,
        } in self.queue.iter()
        {
            let life = ["0", "1", "2"][*life as usize];
            let queued = (
                item.tenant.bind(py),
                item.kind.bind(py),
                item.segment.as_ref().map(|s| s.bind(py)),
                PyDict::new(py),
                self.declared.touches_to_py(py, &item.touches)?,
            );
            pending.append((*ts, life, &**key, queued))?;
        }
        state.set_item("pending", pending)?;
        state.set_item("bare_ids_until", self.seen.bare_ids_until)?;
        state.set_item("fleet", self.declared.fleet_to_py(py)?)?;
        state.set_item("fleet_pending", self.declared.fleet_pending_to_py(py)?)?;
        state.set_item("source_wms", &self.clock.source_wms)?;
        state.set_item("watermark", self.clock.watermark)?;
        state.set_item("next_step", self.clock.next_step)?;
        let dirty: HashSet<&str> = self.store.dirty.iter().map(|id| &**id).collect();
        state.set_item("dirty", dirty)?;
        Ok(state)
    }

    /// How many ids each day holds, and one day's ids.
    fn seen_day_counts(&self) -> HashMap<i64, usize> {
        self.seen.day_counts()
    }

    fn seen_day(&self, day: i64) -> Vec<&str> {
        self.seen.day(day)
    }

    /// Take over a restored ShardState, and work out again what derives from its tenants
    /// or depends on settings that may have changed since it was saved. `reset_peaks`:
    /// the health components' settings changed, so the scores kept as the drop window's
    /// peaks are of another model (a new score below them would be no customer's fall).
    fn restore(&mut self, state: &Bound<'_, PyAny>, reset_peaks: bool) -> PyResult<()> {
        self.restore_state(state, reset_peaks)
    }
}

impl ShardCore {
    fn accept(
        &mut self,
        py: Python<'_>,
        event: &Bound<'_, PyAny>,
        out: &Bound<'_, PyList>,
    ) -> PyResult<()> {
        let tuple = event.cast::<PyTuple>()?;
        let event_id = tuple.get_item(event::EVENT_ID)?;
        let event_id = event_id.cast::<PyString>()?.to_str()?;
        let kind_obj = tuple.get_item(event::TYPE)?;
        let kind = kind_obj.cast::<PyString>()?.to_str()?;
        let tenant_obj = tuple.get_item(event::TENANT_ID)?;
        let tenant_id = tenant_obj.cast::<PyString>()?.to_str()?;
        let ts: i64 = tuple.get_item(event::TS)?.extract()?;
        let wm: i64 = tuple.get_item(event::WM)?.extract()?;
        if self.seen.is_repeat(tenant_id, event_id) {
            self.duplicates += 1;
            return Ok(());
        }
        if ts < wm || self.clock.watermark.is_some_and(|w| ts < w) {
            self.late += 1;
            let late = findings::Late {
                event: event.clone().unbind(),
            };
            out.append(Py::new(py, late)?)?;
            return Ok(());
        }
        let key = self.seen.remember(floor_div(ts, MS_PER_DAY));
        match self.type_counts.get_mut(kind) {
            Some(count) => *count += 1,
            None => {
                self.type_counts.insert(kind.to_string(), 1);
            }
        }
        if !self.known.contains(kind) {
            self.unknown_types += 1;
            return Ok(());
        }
        let life = life_order(kind, &tuple.get_item(event::ATTRS)?)?;
        let item = self.queued(tuple)?;
        self.queue.push(Pending {
            ts,
            life,
            key,
            item,
        });
        Ok(())
    }

    /// What the queue keeps of an event (a vigil.intake.events.Event). Strings a tenant or the
    /// catalogue already holds are shared rather than kept once per event.
    fn queued(&mut self, event: &Bound<'_, PyTuple>) -> PyResult<Queued> {
        let py = event.py();
        let name = event.get_item(event::TYPE)?.cast_into::<PyString>()?;
        let name = name.to_str()?;
        let kind = self.shared(py, name);
        let segment = event.get_item(event::SEGMENT)?;
        let tenant = event.get_item(event::TENANT_ID)?.cast_into::<PyString>()?;
        let tenant = match self.store.tenants.get(tenant.to_str()?) {
            Some(known) => known.py_id.clone_ref(py),
            None => tenant.unbind(),
        };
        Ok(Queued {
            tenant,
            segment: if segment.is_none() {
                None
            } else {
                let segment = segment.cast_into::<PyString>()?;
                Some(self.shared(py, segment.to_str()?))
            },
            touches: self.declared.touches(name, event)?,
            kind,
        })
    }

    /// One Python string for each event type and segment the queue holds (a few: both
    /// come from the catalogue), rather than one per queued event.
    fn shared(&mut self, py: Python<'_>, text: &str) -> Py<PyString> {
        if let Some(known) = self.shared_names.get(text) {
            return known.clone_ref(py);
        }
        let made = PyString::new(py, text).unbind();
        self.shared_names
            .insert(text.to_string(), made.clone_ref(py));
        made
    }

    fn tick(
        &mut self,
        py: Python<'_>,
        tick: &Bound<'_, PyAny>,
        out: &Bound<'_, PyList>,
    ) -> PyResult<()> {
        let tuple = tick.cast::<PyTuple>()?;
        let source: String = tuple.get_item(event::TICK_SOURCE)?.extract()?;
        let wm: Option<i64> = tuple.get_item(event::TICK_WM)?.extract()?;
        let sources: usize = tuple.get_item(event::TICK_SOURCES)?.extract()?;
        match self.clock.hear(source, wm, sources) {
            Some(watermark) => self.advance(py, watermark, out),
            None => Ok(()),
        }
    }

    fn advance(&mut self, py: Python<'_>, watermark: i64, out: &Bound<'_, PyList>) -> PyResult<()> {
        if self.clock.next_step.is_none() {
            match self.queue.earliest() {
                Some(earliest) if earliest < watermark => self.clock.start(earliest),
                _ => return Ok(()),
            }
        }
        while let Some(now) = self.clock.next_before(watermark) {
            self.apply_before(py, now, out)?;
            self.step(py, now, out)?;
            self.clock.stepped(now);
        }
        Ok(())
    }

    fn apply_before(&mut self, py: Python<'_>, now: i64, out: &Bound<'_, PyList>) -> PyResult<()> {
        self.declared.apply_fleet_before(now);
        for Pending { ts, item, .. } in self.queue.take_before(now) {
            let tenant_obj = item.tenant.bind(py);
            let tenant_str = tenant_obj.to_str()?;
            let index = match self.store.tenants.get_index_of(tenant_str) {
                Some(index) => index,
                None => {
                    let id: Arc<str> = tenant_str.into();
                    self.clock.rescore_after(ts + self.cfg.warmup, &id);
                    let mut tenant = Tenant::new(id.clone(), item.tenant.clone_ref(py), ts);
                    tenant.measured = self.declared.fresh().into();
                    tenant.components = vec![None; self.scorer.total()].into();
                    tenant.stale = self.scorer.all_bits();
                    self.store.insert(tenant)
                }
            };
            let tenant = &mut self.store.tenants[index];
            if let Some(segment) = &item.segment {
                if !tenant.segment.as_ref().is_some_and(|held| held.is(segment)) {
                    tenant.segment = Some(segment.clone_ref(py));
                }
            }
            tenant.last_event_at = ts;
            tenant.heard = true; // what silence held (still stale) is measured afresh
            let fed = !item.touches.is_empty();
            if fed {
                // The components over what the event feeds.
                tenant.stale |= item
                    .touches
                    .measures()
                    .fold(0, |bits, measure| bits | self.readers[measure]);
                for instant in self.declared.moves(ts, &item.touches) {
                    self.clock.rescore_after(instant, &tenant.tenant_id);
                }
            }
            let refused =
                self.declared
                    .apply(&mut tenant.measured, ts, item.touches, self.cfg.max_keys);
            if fed {
                for instant in self.declared.deadlines(&tenant.measured) {
                    self.clock.rescore_after(instant, &tenant.tenant_id);
                }
            }
            for (name, key) in refused {
                let refused = findings::KeyRefused {
                    measure: name.to_string(),
                    tenant_id: tenant_str.to_string(),
                    key,
                    at: ts,
                };
                out.append(Py::new(py, refused)?)?;
            }
            let tenant_id = tenant.tenant_id.clone();
            self.store.dirty.insert(tenant_id);
        }
        Ok(())
    }

    fn step(&mut self, py: Python<'_>, now: i64, out: &Bound<'_, PyList>) -> PyResult<()> {
        if now.rem_euclid(MS_PER_DAY) == 0 {
            self.daily(py, now, out)?;
        }
        if let Some(ids) = self.clock.take_rescores(now) {
            for tenant_id in ids {
                if let Some(due) = self.store.tenants.get_mut(&tenant_id) {
                    // events may have left a window, a process stalled
                    due.stale |= self.moving_readers;
                    self.store.dirty.insert(tenant_id);
                }
            }
        }
        let reweigh = std::mem::take(&mut self.reweigh);
        // By place in the store: no tenant comes or goes until the next midnight.
        let dirty: Vec<usize> = self
            .store
            .take_dirty()
            .iter()
            .map(|id| {
                self.store
                    .tenants
                    .get_index_of(id)
                    .expect("dirty tenants exist")
            })
            .collect();
        let mut raised = Vec::new();
        let mut cleared = Vec::new();
        if !self.declared.is_empty() {
            let everyone: Vec<usize>;
            let evaluated = if self.declared.needs_everyone_at(now) {
                everyone = self.store.in_id_order();
                &everyone
            } else {
                &dirty
            };
            let mut ended = Vec::new();
            for &index in evaluated {
                let tenant = &mut self.store.tenants[index];
                let found = self.declared.evaluate(
                    &mut tenant.measured,
                    &mut tenant.declared_active,
                    now,
                    tenant.first_seen,
                    &mut ended,
                );
                raised.extend(found.into_iter().map(|r| (index, r)));
                cleared.extend(ended.drain(..).map(|signal| (index, signal)));
            }
        }
        if reweigh {
            // After a restore every tenant is scored, as the weights may have changed;
            // those not due are only re-weighed (both lists are in id order).
            let mut due = dirty.iter().peekable();
            for index in self.store.in_id_order() {
                let measuring = due.next_if(|&&d| d == index).is_some();
                let tenant_id = self.store.tenants[index].tenant_id.clone();
                self.store.touched.insert(tenant_id); // to be saved again
                self.score(py, index, now, out, true, measuring)?;
            }
        } else {
            for &index in &dirty {
                self.score(py, index, now, out, false, true)?;
            }
        }
        for (index, found) in raised {
            let crossed = findings::Crossed {
                tenant_id: self.store.tenants[index].tenant_id.to_string(),
                signal: found.signal,
                measured: declared::reading_to_py(py, found.measured.as_ref())?.unbind(),
                other: declared::reading_to_py(py, found.other.as_ref())?.unbind(),
                history: found.history,
                stalled: found.stalled,
                at: now,
                context: self.context(py, index)?,
            };
            out.append(Py::new(py, crossed)?)?;
        }
        for (index, signal) in cleared {
            let tenant_id = self.store.tenants[index].tenant_id.to_string();
            let ended = findings::Cleared {
                tenant_id,
                signal,
                at: now,
            };
            out.append(Py::new(py, ended)?)?;
        }
        out.append(Py::new(py, findings::Stepped { at: now })?)?;
        Ok(())
    }

    fn daily(&mut self, py: Python<'_>, now: i64, out: &Bound<'_, PyList>) -> PyResult<()> {
        let silent_since = now - self.cfg.forget_after;
        let gone = self.store.forget_silent(silent_since);
        let ended = findings::DayEnded {
            at: now,
            forgotten: gone.iter().map(|id| id.to_string()).collect(),
        };
        out.append(Py::new(py, ended)?)?;
        for tenant in self.store.tenants.values_mut() {
            self.store.dirty.insert(tenant.tenant_id.clone());
            tenant.stale |= self.timed_readers;
            self.declared.prune(&mut tenant.measured, now);
        }
        self.declared.prune_fleet(now);
        self.seen
            .forget_before(floor_div(now - self.cfg.dedup_retention, MS_PER_DAY));
        Ok(())
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ShardCore>()?;
    m.add_class::<intake::Decoder>()?;
    m.add_class::<split::ShardSplitter>()?;
    findings::add_classes(m)?;
    Ok(())
}
