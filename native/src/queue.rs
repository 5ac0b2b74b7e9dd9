//! The event-time queue: accepted events wait here until the clock passes them, then
//! leave in event-time order (at one instant: an item's creation before its end, then
//! by de-duplication key), whatever order they arrived in.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::declared::Touches;

/// An accepted event waiting for the watermark: sorted by (ts, life, key). Only what
/// applying it needs is kept, not the decoded event (its attributes, its position).
pub struct Pending {
    pub ts: i64,
    pub life: u8,
    pub key: Arc<str>,
    pub item: Queued,
}

/// A queued event as a snapshot saves it: (tenant, type, segment, the attributes kept
/// of it (none now; earlier versions kept some), the declared measures' touches).
pub type SavedQueued<'py> = (
    Bound<'py, PyString>,
    Bound<'py, PyString>,
    Option<Bound<'py, PyString>>,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
);

/// What applying an event needs: its tenant, type and segment, and what it does to the
/// declared measures.
pub struct Queued {
    pub tenant: Py<PyString>,
    pub kind: Py<PyString>,
    pub segment: Option<Py<PyString>>,
    pub touches: Touches,
}

#[derive(Default)]
pub struct Queue {
    pending: Vec<Pending>,
    // Events were queued since the queue was last sorted.
    unsorted: bool,
    // The earliest event time queued, over the first `scanned` events: what starts the
    // clock (see `earliest`).
    earliest: Option<i64>,
    scanned: usize,
}

impl Queue {
    pub fn push(&mut self, pending: Pending) {
        self.pending.push(pending);
        self.unsorted = true;
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Pending> {
        self.pending.iter()
    }

    /// The earliest event time queued since the queue began; looks at each event once.
    pub fn earliest(&mut self) -> Option<i64> {
        if self.pending.len() > self.scanned {
            let fresh = self.pending[self.scanned..]
                .iter()
                .map(|p| p.ts)
                .min()
                .expect("some");
            self.earliest = Some(self.earliest.map_or(fresh, |e| e.min(fresh)));
            self.scanned = self.pending.len();
        }
        self.earliest
    }

    /// The events before `now`, in order, out of the queue.
    pub fn take_before(&mut self, now: i64) -> Vec<Pending> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        if std::mem::take(&mut self.unsorted) {
            // Keys are unique, so this order is total: stable or not, the same.
            self.pending
                .sort_unstable_by(|a, b| (a.ts, a.life, &a.key).cmp(&(b.ts, b.life, &b.key)));
        }
        let due = self.pending.partition_point(|p| p.ts < now);
        self.pending.drain(..due).collect()
    }
}

/// An event's place in its item's life at one instant: an item is opened (0) before
/// anything else happens to it (1) and before it is closed (2).
pub fn life_order(kind: &str, attrs: &Bound<'_, PyAny>) -> PyResult<u8> {
    Ok(match kind {
        "onboarding.started" | "ticket.created" => 0,
        "ticket.resolved" | "onboarding.completed" => 2,
        "billing.invoice" => {
            let status: String = attrs.get_item("status")?.extract()?;
            match status.as_str() {
                "issued" => 0,
                "paid" => 2,
                _ => 1,
            }
        }
        _ => 1,
    })
}
