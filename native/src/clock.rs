//! The shard's clock: the watermark (the least of its partitions'), the fixed steps it
//! moves through event time in, and the tenants to re-score at a step.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use crate::fmt::floor_to;
use crate::store::Id;

pub struct Clock {
    step: i64,
    /// Each partition's watermark, None until it has one.
    pub source_wms: HashMap<String, Option<i64>>,
    pub watermark: Option<i64>,
    /// The next step; None until the first event time is known.
    pub next_step: Option<i64>,
    rescore_at: HashMap<i64, HashSet<Id>>,
}

impl Clock {
    pub fn new(step: i64) -> Self {
        Clock {
            step,
            source_wms: HashMap::default(),
            watermark: None,
            next_step: None,
            rescore_at: HashMap::default(),
        }
    }

    /// A partition's watermark heard (of `sources` in all): the shard's watermark, if
    /// every partition has one and it moved forward.
    pub fn hear(&mut self, source: String, wm: Option<i64>, sources: usize) -> Option<i64> {
        self.source_wms.insert(source, wm);
        if self.source_wms.len() < sources {
            return None; // not every partition has spoken
        }
        let watermark = self.source_wms.values().filter_map(|w| *w).min()?;
        if self.watermark.is_some_and(|w| watermark <= w) {
            return None;
        }
        self.watermark = Some(watermark);
        Some(watermark)
    }

    /// Starts stepping from the step after `earliest`, the first event time.
    pub fn start(&mut self, earliest: i64) {
        self.next_step = Some(floor_to(earliest, self.step, 0) + self.step);
    }

    /// The next step, if the clock has started and it is not past `watermark`.
    pub fn next_before(&self, watermark: i64) -> Option<i64> {
        self.next_step.filter(|step| *step <= watermark)
    }

    /// The step at `now` is done.
    pub fn stepped(&mut self, now: i64) {
        self.next_step = Some(now + self.step);
    }

    /// Re-score the tenant at the first step at or after `instant` (not before the next).
    pub fn rescore_after(&mut self, instant: i64, tenant_id: &Id) {
        let step = floor_to(instant - 1, self.step, 0) + self.step;
        if self.next_step.is_none_or(|next| step >= next) {
            self.rescore_at
                .entry(step)
                .or_default()
                .insert(tenant_id.clone());
        }
    }

    /// The tenants to re-score at the step `now`.
    pub fn take_rescores(&mut self, now: i64) -> Option<HashSet<Id>> {
        self.rescore_at.remove(&now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_is_the_least_of_the_partitions_that_have_one() {
        let mut clock = Clock::new(10);
        assert_eq!(
            clock.hear("a".into(), Some(50), 2),
            None,
            "b has not spoken"
        );
        let no_events_yet = clock.hear("b".into(), None, 2);
        assert_eq!(
            no_events_yet,
            Some(50),
            "a partition without one holds none back"
        );
        assert_eq!(
            clock.hear("b".into(), Some(60), 2),
            None,
            "the least did not move"
        );
        assert_eq!(clock.hear("a".into(), Some(80), 2), Some(60));
    }

    #[test]
    fn it_stops_at_steps_up_to_the_watermark() {
        let mut clock = Clock::new(10);
        assert_eq!(clock.next_before(100), None, "not started");
        clock.start(3);
        assert_eq!(clock.next_before(100), Some(10));
        clock.stepped(10);
        assert_eq!(
            clock.next_before(19),
            None,
            "the next step is past the watermark"
        );
    }

    #[test]
    fn a_rescore_falls_at_the_first_step_at_or_after_its_instant() {
        let mut clock = Clock::new(10);
        clock.start(0);
        let t: Id = "t".into();
        clock.rescore_after(20, &t);
        clock.rescore_after(21, &t);
        assert!(clock.take_rescores(20).is_some_and(|ids| ids.contains("t")));
        assert!(clock.take_rescores(30).is_some());
        clock.stepped(30);
        clock.rescore_after(5, &t);
        assert_eq!(
            clock.take_rescores(10),
            None,
            "a step gone by is not due again"
        );
    }
}
