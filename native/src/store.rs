//! The shard's tenants: who is held, in the order the engine visits them, which changed
//! since the last snapshot, which wait to be re-scored, and how many are in each zone.

use std::sync::Arc;

use indexmap::IndexMap;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use crate::tenant::Tenant;

pub type Id = Arc<str>;

#[derive(Default)]
pub struct Store {
    pub tenants: IndexMap<Id, Tenant, rustc_hash::FxBuildHasher>,
    /// Changed in a way a snapshot must save, but not waiting to be re-scored.
    pub touched: HashSet<Id>,
    /// Events applied, or measures moved, since the last re-scoring.
    pub dirty: HashSet<Id>,
    /// How many tenants are in each zone.
    pub zones: HashMap<&'static str, i64>,
}

impl Store {
    /// Holds a tenant (new or restored).
    pub fn insert(&mut self, tenant: Tenant) -> usize {
        if let Some(zone) = tenant.zone {
            *self.zones.entry(zone).or_insert(0) += 1;
        }
        self.tenants.insert_full(tenant.tenant_id.clone(), tenant).0
    }

    /// The held id spelled `text`, shared; a new one if none is held.
    pub fn id(&self, text: &str) -> Id {
        self.tenants
            .get_key_value(text)
            .map(|(id, _)| id.clone())
            .unwrap_or_else(|| text.into())
    }

    /// Moves a tenant into `zone`.
    pub fn set_zone(&mut self, index: usize, zone: &'static str) {
        let tenant = &mut self.tenants[index];
        if Some(zone) != tenant.zone {
            *self.zones.entry(zone).or_insert(0) += 1;
            if let Some(old) = tenant.zone {
                *self.zones.entry(old).or_insert(0) -= 1;
            }
        }
        tenant.zone = Some(zone);
    }

    /// Lets go of the tenants whose latest event is before `since`; their ids.
    pub fn forget_silent(&mut self, since: i64) -> Vec<Id> {
        let gone: Vec<Id> = self
            .tenants
            .values()
            .filter(|t| t.last_event_at < since)
            .map(|t| t.tenant_id.clone())
            .collect();
        for tenant_id in &gone {
            let tenant = self.tenants.shift_remove(tenant_id).expect("listed");
            self.dirty.remove(tenant_id);
            self.touched.insert(tenant_id.clone());
            if let Some(zone) = tenant.zone {
                *self.zones.entry(zone).or_insert(0) -= 1;
            }
        }
        gone
    }

    /// The tenants to re-score now, in id order; they count as touched.
    pub fn take_dirty(&mut self) -> Vec<Id> {
        let mut dirty: Vec<Id> = self.dirty.drain().collect();
        dirty.sort();
        self.touched.extend(dirty.iter().cloned());
        dirty
    }

    /// Every tenant's place in the store, in id order.
    pub fn in_id_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.tenants.len()).collect();
        order.sort_by(|a, b| self.tenants[*a].tenant_id.cmp(&self.tenants[*b].tenant_id));
        order
    }

    /// The tenants changed since the last call (touched, and applied but not re-scored).
    pub fn take_changed(&mut self) -> Vec<String> {
        let changed: HashSet<&Id> = self.touched.iter().chain(self.dirty.iter()).collect();
        let changed = changed.into_iter().map(|id| id.to_string()).collect();
        self.touched.clear();
        changed
    }

    /// Every tenant counts as changed (none is saved yet).
    pub fn touch_all(&mut self) {
        self.touched.extend(self.tenants.keys().cloned());
    }
}
