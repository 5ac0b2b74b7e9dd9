//! Tenants onto shards: which shard owns a tenant, and a source batch cut into one list
//! per shard (vigil.flows.health), every shard getting the batch's watermark tick, and
//! before it a note of what the batch's events told the fleet (the values of a measure
//! `of_fleet`), so every shard holds the same fleet.

use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use crate::event;

/// The shard that owns a tenant: CRC-32 (IEEE) of its id's UTF-8, modulo the shards.
/// Stable across processes, machines and versions: a recovery store depends on it.
pub fn shard_of(tenant_id: &str, shards: usize) -> usize {
    crc32fast::hash(tenant_id.as_bytes()) as usize % shards
}

/// An event type whose attribute feeds a measure of the fleet: (type, attribute, the
/// attribute values it must have, the measure).
type FleetFeed = (String, String, Vec<(String, String)>, String);

#[pyclass(frozen)]
pub struct ShardSplitter {
    shards: usize,
    event_type: Py<PyAny>,
    tick_type: Py<PyAny>,
    fleet: Vec<FleetFeed>,
}

#[pymethods]
impl ShardSplitter {
    #[new]
    #[pyo3(signature = (shards, event_type, tick_type, fleet = Vec::new()))]
    fn new(
        shards: usize,
        event_type: Py<PyAny>,
        tick_type: Py<PyAny>,
        fleet: Vec<FleetFeed>,
        py: Python<'_>,
    ) -> PyResult<Self> {
        if shards == 0 {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "at least one shard",
            ));
        }
        event::check_fields(event_type.bind(py), &event::EVENT_FIELDS)?;
        event::check_fields(tick_type.bind(py), &event::TICK_FIELDS)?;
        Ok(ShardSplitter {
            shards,
            event_type,
            tick_type,
            fleet,
        })
    }

    /// One list per shard of a batch's events, in their order, each ending with the
    /// batch's ticks; anything else (a dead letter) is left out. Before each tick, every
    /// shard gets the note of the fleet's values since the last one: a tuple of
    /// (measure, value, latest event time), of the events not late.
    fn split<'py>(&self, chunk: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyList>>> {
        let py = chunk.py();
        let per_shard: Vec<Bound<'py, PyList>> =
            (0..self.shards).map(|_| PyList::empty(py)).collect();
        let (event_type, tick_type) = (self.event_type.bind(py), self.tick_type.bind(py));
        let mut noted: HashMap<(usize, String), i64> = HashMap::new();
        for item in chunk.try_iter()? {
            let item = item?;
            let kind = item.get_type();
            if kind.is(event_type) {
                let event = item.cast::<PyTuple>()?;
                let tenant = event.get_item(event::TENANT_ID)?;
                let shard = shard_of(tenant.cast::<PyString>()?.to_str()?, self.shards);
                per_shard[shard].append(&item)?;
                if !self.fleet.is_empty() {
                    self.note(event, &mut noted)?;
                }
            } else if kind.is(tick_type) {
                self.flush(py, &mut noted, &per_shard)?;
                for items in &per_shard {
                    items.append(&item)?;
                }
            }
        }
        self.flush(py, &mut noted, &per_shard)?;
        Ok(per_shard)
    }

    /// The shard that owns `tenant_id`.
    fn shard_of(&self, tenant_id: &str) -> usize {
        shard_of(tenant_id, self.shards)
    }
}

impl ShardSplitter {
    /// What an event tells the fleet, kept as each value's latest time; a late event
    /// (older than the watermark it came under) tells nothing, as the shards drop it.
    fn note(
        &self,
        event: &Bound<'_, PyTuple>,
        noted: &mut HashMap<(usize, String), i64>,
    ) -> PyResult<()> {
        let kind_obj = event.get_item(event::TYPE)?;
        let kind = kind_obj.cast::<PyString>()?.to_str()?;
        for (index, (feeds, attr, filter, _)) in self.fleet.iter().enumerate() {
            if feeds != kind {
                continue;
            }
            let ts: i64 = event.get_item(event::TS)?.extract()?;
            let wm: i64 = event.get_item(event::WM)?.extract()?;
            let attrs = event.get_item(event::ATTRS)?;
            let Ok(attrs) = attrs.cast::<PyDict>() else {
                continue;
            };
            let said = |name: &str| -> PyResult<Option<String>> {
                Ok(match attrs.get_item(name)? {
                    Some(value) => value.cast::<PyString>().ok().map(|s| s.to_string()),
                    None => None,
                })
            };
            if ts < wm {
                continue;
            }
            let mut fits = true;
            for (key, wanted) in filter {
                fits &= said(key)?.as_deref() == Some(wanted.as_str());
            }
            if let (true, Some(value)) = (fits, said(attr)?) {
                let at = noted.entry((index, value)).or_insert(ts);
                *at = (*at).max(ts);
            }
        }
        Ok(())
    }

    /// The note of the fleet's values so far, to every shard, and start a new one.
    fn flush<'py>(
        &self,
        py: Python<'py>,
        noted: &mut HashMap<(usize, String), i64>,
        per_shard: &[Bound<'py, PyList>],
    ) -> PyResult<()> {
        if noted.is_empty() {
            return Ok(());
        }
        let mut entries: Vec<((usize, String), i64)> = noted.drain().collect();
        entries.sort();
        let items: Vec<Bound<'py, PyAny>> = entries
            .iter()
            .map(|((index, value), at)| {
                (self.fleet[*index].3.as_str(), value.as_str(), *at).into_pyobject(py)
            })
            .collect::<PyResult<Vec<_>>>()?
            .into_iter()
            .map(Bound::into_any)
            .collect();
        let note = PyTuple::new(py, items)?;
        for items in per_shard {
            items.append(&note)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_lands_where_zlib_crc32_puts_it() {
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926); // the CRC-32 check value
        assert_eq!(shard_of("123456789", 32), 0xCBF4_3926 % 32);
        assert!(shard_of("any tenant", 7) < 7);
    }
}
