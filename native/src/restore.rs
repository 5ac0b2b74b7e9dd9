//! A restored shard: its state taken over from a snapshot (vigil.engine.state.ShardState),
//! and what it works out again from its tenants.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use crate::queue::{life_order, Pending, Queued, SavedQueued};
use crate::store::Id;
use crate::tenant::{self, Tenant};
use crate::{event, ShardCore};

impl ShardCore {
    /// Take over a restored ShardState, and work out again what derives from its tenants
    /// or depends on settings that may have changed since it was saved. `reset_peaks`:
    /// the health components' settings changed, so the scores kept as the drop window's
    /// peaks are of another model (a new score below them would be no customer's fall).
    pub(crate) fn restore_state(
        &mut self,
        state: &Bound<'_, PyAny>,
        reset_peaks: bool,
    ) -> PyResult<()> {
        for tenant in state
            .getattr("tenants")?
            .call_method0("values")?
            .try_iter()?
        {
            let tenant = tenant?;
            let saved = tenant.getattr("measured").ok();
            let raised: Vec<String> = match tenant.getattr("signals_raised") {
                Ok(names) => names.extract()?,
                Err(_) => Vec::new(), // a store of a version without declared signals
            };
            let saved_components = tenant.getattr("components").ok();
            let mut tenant = Tenant::from_py(&tenant)?;
            tenant.measured = self.declared.restored(saved)?.into();
            self.restore_components(&mut tenant, saved_components)?;
            for (index, name) in self.declared_names.iter().enumerate() {
                if raised.contains(name) {
                    tenant.declared_active |= 1 << index;
                }
            }
            self.store.insert(tenant);
        }
        if let Ok(fleet) = state.getattr("fleet") {
            self.declared.restore_fleet(&fleet)?; // none in stores of older formats
        }
        if let Ok(pending) = state.getattr("fleet_pending") {
            for entry in pending.try_iter()? {
                let (measure, value, at): (String, String, i64) = entry?.extract()?;
                self.declared.note_fleet(&measure, value.into(), at);
            }
        }
        let event_type = self.event_type.bind(state.py()).clone();
        for entry in state.getattr("pending")?.try_iter()? {
            // A store of an older format kept the decoded event, and the oldest ones no
            // place in life nor key: worked out here.
            let (ts, life, key, held): (i64, Option<String>, Option<String>, Bound<'_, PyAny>) =
                entry?.extract()?;
            let item = if held.get_type().is(&event_type) {
                self.queued(held.cast::<PyTuple>()?)?
            } else {
                let (tenant, kind, segment, attrs, touches): SavedQueued<'_> = held.extract()?;
                let segment = match segment {
                    Some(segment) => Some(self.shared(state.py(), segment.to_str()?)),
                    None => None,
                };
                Queued {
                    touches: self
                        .declared
                        .touches_from_saved(kind.to_str()?, &attrs, &touches)?,
                    tenant: tenant.unbind(),
                    kind: self.shared(state.py(), kind.to_str()?),
                    segment,
                }
            };
            let life = match life {
                Some(life) => life
                    .parse()
                    .map_err(|_| pyo3::exceptions::PyValueError::new_err("life"))?,
                None => {
                    let fields = held.cast::<PyTuple>()?;
                    let kind: String = fields.get_item(event::TYPE)?.extract()?;
                    life_order(&kind, &fields.get_item(event::ATTRS)?)?
                }
            };
            let key = match key {
                Some(key) => key,
                None => {
                    let fields = held.cast::<PyTuple>()?;
                    let tenant_id: String = fields.get_item(event::TENANT_ID)?.extract()?;
                    let event_id: String = fields.get_item(event::EVENT_ID)?.extract()?;
                    self.seen.key_of(&tenant_id, &event_id)
                }
            };
            self.queue.push(Pending {
                ts,
                life,
                key: key.into(),
                item,
            });
        }
        let days: HashMap<i64, Vec<String>> = state.getattr("seen_by_day")?.extract()?;
        for (day, keys) in days {
            self.seen.restore_day(day, keys);
        }
        self.seen.bare_ids_until = state.getattr("bare_ids_until")?.extract()?;
        self.clock.source_wms = state.getattr("source_wms")?.extract()?;
        self.clock.watermark = state.getattr("watermark")?.extract()?;
        self.clock.next_step = state.getattr("next_step")?.extract()?;
        let dirty: HashSet<String> = state.getattr("dirty")?.extract()?;
        self.store.dirty = dirty.iter().map(|t| self.store.id(t)).collect();
        self.resume(reset_peaks);
        Ok(())
    }

    /// A restored tenant's components: those saved under their declaration as they
    /// were, the others to be measured afresh (declared since, or changed), not held as
    /// silence would hold them.
    fn restore_components(
        &self,
        tenant: &mut Tenant,
        saved: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let saved = match saved {
            Some(saved) => Some(saved.cast_into::<PyDict>()?),
            None => None, // a store of a version without declared components
        };
        tenant.components = vec![None; self.scorer.total()].into();
        for (index, component) in self.scorer.components.iter().enumerate() {
            let entry = match &saved {
                Some(saved) => saved.get_item(&component.name)?,
                None => None,
            };
            match entry {
                Some(entry) => {
                    let (digest, measure): (String, Bound<'_, PyAny>) = entry.extract()?;
                    if digest != component.digest {
                        tenant.stale |= component.bit;
                        tenant.afresh |= component.bit;
                        continue;
                    }
                    tenant.components[index] = tenant::measure_from_py(&measure)?;
                }
                None => {
                    tenant.stale |= component.bit;
                    tenant.afresh |= component.bit;
                }
            }
        }
        Ok(())
    }

    /// What a restored shard works out again from its tenants.
    fn resume(&mut self, reset_peaks: bool) {
        let ids: Vec<Id> = self.store.tenants.keys().cloned().collect();
        for tenant_id in &ids {
            let tenant = &self.store.tenants[tenant_id];
            let mut due: Vec<i64> = vec![tenant.first_seen + self.cfg.warmup];
            due.extend(self.declared.held_moves(&tenant.measured));
            due.extend(self.declared.deadlines(&tenant.measured));
            for instant in due {
                self.clock.rescore_after(instant, tenant_id);
            }
            if reset_peaks {
                self.store.tenants[tenant_id].recent_scores.clear();
            }
        }
        // Every tenant is scored at the first step even if no measure moved, as the
        // weights may have (components are kept under their declaration's digest).
        // Unchanged, the score comes out the same, and nothing is written.
        self.reweigh = true;
    }
}
