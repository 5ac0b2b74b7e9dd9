//! Tenants onto shards: which shard owns a tenant, and a source batch cut into one list
//! per shard (vigil.flows.health), every shard getting the batch's watermark tick.

use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};

use crate::event;

/// The shard that owns a tenant: CRC-32 (IEEE) of its id's UTF-8, modulo the shards.
/// Stable across processes, machines and versions: a recovery store depends on it.
pub fn shard_of(tenant_id: &str, shards: usize) -> usize {
    crc32fast::hash(tenant_id.as_bytes()) as usize % shards
}

#[pyclass(frozen)]
pub struct ShardSplitter {
    shards: usize,
    event_type: Py<PyAny>,
    tick_type: Py<PyAny>,
}

#[pymethods]
impl ShardSplitter {
    #[new]
    fn new(
        shards: usize,
        event_type: Py<PyAny>,
        tick_type: Py<PyAny>,
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
        })
    }

    /// One list per shard of a batch's events, in their order, each ending with the
    /// batch's ticks; anything else (a dead letter) is left out.
    fn split<'py>(&self, chunk: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyList>>> {
        let py = chunk.py();
        let per_shard: Vec<Bound<'py, PyList>> =
            (0..self.shards).map(|_| PyList::empty(py)).collect();
        let (event_type, tick_type) = (self.event_type.bind(py), self.tick_type.bind(py));
        for item in chunk.try_iter()? {
            let item = item?;
            let kind = item.get_type();
            if kind.is(event_type) {
                let tenant = item.cast::<PyTuple>()?.get_item(event::TENANT_ID)?;
                let shard = shard_of(tenant.cast::<PyString>()?.to_str()?, self.shards);
                per_shard[shard].append(&item)?;
            } else if kind.is(tick_type) {
                for items in &per_shard {
                    items.append(&item)?;
                }
            }
        }
        Ok(per_shard)
    }

    /// The shard that owns `tenant_id`.
    fn shard_of(&self, tenant_id: &str) -> usize {
        shard_of(tenant_id, self.shards)
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
