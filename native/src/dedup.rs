//! De-duplication: the keys of the events accepted, by the day of their event time,
//! forgotten a day at a time once older than `dedup_retention`.

use std::sync::Arc;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

#[derive(Default)]
pub struct Seen {
    by_day: HashMap<i64, Vec<Arc<str>>>,
    keys: HashSet<Arc<str>>,
    /// A store of a Vigil that kept ids without their tenant: until this day's ids are
    /// forgotten, an event's bare id is looked up too (ShardState.bare_ids_until).
    pub bare_ids_until: Option<i64>,
    /// The key of the event being accepted (dedup_key): a buffer kept between events.
    key: String,
}

impl Seen {
    /// Whether the event was accepted before; its key is kept for `remember`.
    pub fn is_repeat(&mut self, tenant_id: &str, event_id: &str) -> bool {
        dedup_key(&mut self.key, tenant_id, event_id);
        self.keys.contains(self.key.as_str())
            || (self.bare_ids_until.is_some() && self.keys.contains(event_id))
    }

    /// Remembers the event last asked about, under the day of `day`; returns its key.
    pub fn remember(&mut self, day: i64) -> Arc<str> {
        let key: Arc<str> = Arc::from(self.key.as_str());
        self.keys.insert(key.clone());
        self.by_day.entry(day).or_default().push(key.clone());
        key
    }

    /// The key of an event, for a queued one a store of an older format kept without it.
    pub fn key_of(&mut self, tenant_id: &str, event_id: &str) -> String {
        dedup_key(&mut self.key, tenant_id, event_id);
        self.key.clone()
    }

    /// Forgets the days before `day`.
    pub fn forget_before(&mut self, day: i64) {
        let old: Vec<i64> = self.by_day.keys().filter(|d| **d < day).copied().collect();
        for old_day in old {
            for key in self.by_day.remove(&old_day).expect("listed") {
                self.keys.remove(&key);
            }
        }
        if self.bare_ids_until.is_some_and(|until| until < day) {
            self.bare_ids_until = None;
        }
    }

    /// How many keys each day holds.
    pub fn day_counts(&self) -> HashMap<i64, usize> {
        self.by_day
            .iter()
            .map(|(day, keys)| (*day, keys.len()))
            .collect()
    }

    pub fn day(&self, day: i64) -> Vec<&str> {
        self.by_day
            .get(&day)
            .map(|keys| keys.iter().map(|key| &**key).collect())
            .unwrap_or_default()
    }

    /// Takes over a day's keys from a snapshot.
    pub fn restore_day(&mut self, day: i64, keys: Vec<String>) {
        let keys: Vec<Arc<str>> = keys.into_iter().map(Arc::from).collect();
        self.keys.extend(keys.iter().cloned());
        self.by_day.insert(day, keys);
    }
}

/// f"{len(tenant_id)}:{tenant_id}{event_id}", the length in characters as Python counts,
/// written into `key` (no allocation, and no format!).
fn dedup_key(key: &mut String, tenant_id: &str, event_id: &str) {
    key.clear();
    let mut chars = tenant_id.chars().count();
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (chars % 10) as u8;
        chars /= 10;
        if chars == 0 {
            break;
        }
    }
    key.push_str(std::str::from_utf8(&digits[at..]).expect("ASCII digits"));
    key.push(':');
    key.push_str(tenant_id);
    key.push_str(event_id);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_counts_the_tenant_ids_characters() {
        let mut seen = Seen::default();
        assert_eq!(seen.key_of("tä", "e1"), "2:täe1");
    }

    #[test]
    fn an_event_is_a_repeat_until_its_day_is_forgotten() {
        let mut seen = Seen::default();
        assert!(!seen.is_repeat("t", "e"));
        seen.remember(10);
        assert!(seen.is_repeat("t", "e"));
        assert!(
            !seen.is_repeat("u", "e"),
            "another tenant's id is another event"
        );
        seen.forget_before(10);
        assert!(seen.is_repeat("t", "e"));
        seen.forget_before(11);
        assert!(!seen.is_repeat("t", "e"));
    }

    #[test]
    fn bare_ids_of_an_old_store_count_until_their_day_goes() {
        let mut seen = Seen::default();
        seen.restore_day(3, vec!["e".into()]);
        seen.bare_ids_until = Some(3);
        assert!(seen.is_repeat("t", "e"));
        seen.forget_before(4);
        assert_eq!(seen.bare_ids_until, None);
        assert!(!seen.is_repeat("t", "e"));
    }
}
