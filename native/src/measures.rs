//! Measures declared in the settings (`[measures.NAME]`): generic aggregations of a
//! tenant's events, each a kind, the event types that feed it, an optional attribute
//! filter and field, and a window. A measure's state is bounded: bucketed counts over
//! its window, at most `engine.max_keys_per_tenant` keys.
//!
//! A new kind is one `Kind` variant, its `State`, and the arms of `apply`, `value` and
//! `prune` below, with its declaration in vigil/config/settings.py.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use thin_vec::ThinVec;

use crate::fmt::floor_to;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// Events in the window.
    Count,
    /// A numeric field summed over the window.
    Sum,
    /// The days of the window (kept by the day) with at least one of its events (days
    /// an integration reported an error).
    Days,
    /// Distinct values of a field seen in the window (active users, features used).
    Distinct,
    /// The most frequent value's share of the window's events (one user's share of
    /// sessions); none without events.
    TopShare,
    /// The latest value of a field, and the one before it.
    Latest,
    /// Items opened by the measure's events and closed by `closed_by` ones, keyed by the
    /// field (open tickets, unpaid invoices): how many are open.
    OpenItems,
    /// The same items: days the oldest still open has been open; none while none is.
    OldestOpen,
    /// Days since the latest of the measure's events.
    DaysSince,
    /// Days until the date the latest event carries in its field (a contract's
    /// renewal_date): an event-time deadline, negative once passed.
    DaysUntil,
    /// The latest value of the field for each key (a ticket's priority, an invoice's
    /// status, an integration's state), until a `closed_by` event closes the key or a
    /// value outside `held_while` comes: how many keys are held; none before its first
    /// event.
    States,
    /// A process (onboarding): started by one event, completed by another, its steps
    /// the distinct values of the field of its events, each event progress: while
    /// started and not completed, how many of its `steps` are done; none otherwise.
    Process,
}

/// A field's value on an event.
#[derive(Clone, PartialEq, Debug)]
pub enum Reading {
    Num(f64),
    Text(Box<str>),
}

impl Reading {
    pub fn key(&self) -> Box<str> {
        match self {
            Reading::Text(text) => text.clone(),
            Reading::Num(x) => x.to_string().into_boxed_str(),
        }
    }

    pub fn num(&self) -> Option<f64> {
        match self {
            Reading::Num(x) => Some(*x),
            Reading::Text(_) => None,
        }
    }
}

/// A declared measure, as the core reads it from the settings.
#[derive(Clone, Debug)]
pub struct Spec {
    pub kind: Kind,
    /// The window's length and the bucket its counts are kept in (days for a window of
    /// whole days, the health step otherwise); 0 for kinds without a window.
    pub window: i64,
    pub bucket: i64,
    /// Windows of counts kept: 2 when a signal compares the window with the one before.
    pub windows_kept: i64,
    /// Calendar windows: whole windows from `origin` (Monday-to-Sunday weeks), the last
    /// closed one counted; else rolling ones, ending now.
    pub calendar: Option<i64>,
    /// States: the values for which a key is held (empty: any).
    pub held_while: Vec<Box<str>>,
    /// Process: the steps it counts, distinct.
    pub steps: Vec<Box<str>>,
    /// Of a rolling count, sum or distinct: what a bucket counts halves with each this
    /// much of age (0: no decay), so recent activity weighs more.
    pub half_life: i64,
    /// Of a distinct: the values it counts, its value their share used (sorted; empty:
    /// any value, a count).
    pub among: Vec<Box<str>>,
    /// Of a distinct: its value the share of the values the tenants of its shard used
    /// in this long (0: a count).
    pub of_fleet: i64,
}

impl Spec {
    /// A spec of `kind` over a window of `window` in buckets of `bucket`.
    pub fn new(kind: Kind, window: i64, bucket: i64) -> Spec {
        Spec {
            kind,
            window,
            bucket,
            windows_kept: 1,
            calendar: None,
            held_while: Vec::new(),
            steps: Vec::new(),
            half_life: 0,
            among: Vec::new(),
            of_fleet: 0,
        }
    }

    /// Whether its value is a share of a set of values (`among`, or the fleet's).
    pub fn is_share(&self) -> bool {
        !self.among.is_empty() || self.of_fleet > 0
    }

    /// What a bucket starting at `bucket` counts for in the window that ends at `end`:
    /// halved per half-life of its age in whole buckets, so the value moves only as
    /// buckets close.
    fn decay(&self, bucket: i64, end: i64) -> f64 {
        if self.half_life == 0 {
            return 1.0;
        }
        let age = (end - bucket - self.bucket).max(0) as f64;
        0.5_f64.powf(age / self.half_life as f64)
    }

    /// The first bucket of the window counted at `now`: of a rolling window, the last
    /// window / bucket buckets, the one `now` is in (or ends) included; of a calendar
    /// window, the last one closed.
    fn first_bucket(&self, now: i64) -> i64 {
        match self.calendar {
            Some(origin) => floor_to(now, self.window, origin) - self.window,
            None => {
                floor_to(now - 1, self.bucket, 0) - (self.window / self.bucket - 1) * self.bucket
            }
        }
    }

    /// The start of the bucket an event at `ts` is counted in (calendar buckets fall on
    /// the windows' grid).
    fn bucket_start(&self, ts: i64) -> i64 {
        floor_to(ts, self.bucket, self.calendar.unwrap_or(0))
    }

    /// Where the window counted at `now` ends (buckets from there on are not in it).
    fn end(&self, now: i64) -> i64 {
        self.first_bucket(now) + self.window
    }

    /// Whether what it counts moves in or out of its window between midnights (when
    /// every tenant is measured again anyway): over buckets shorter than a day, or
    /// calendar windows that close between midnights.
    pub fn moves_within_days(&self) -> bool {
        let day = crate::tenant::MS_PER_DAY;
        match self.calendar {
            _ if self.window == 0 => false,
            None => self.bucket < day,
            Some(origin) => self.window % day != 0 || origin % day != 0,
        }
    }

    /// The instants at which an event at `ts` enters or leaves the window counted
    /// (pushed to `instants`), if between midnights: for a rolling window, when its
    /// bucket leaves; for a calendar one, when its window is the one counted, and after.
    pub fn moves(&self, ts: i64, instants: &mut Vec<i64>) {
        if !self.moves_within_days() {
            return;
        }
        match self.calendar {
            None => instants.push(floor_to(ts, self.bucket, 0) + self.window + 1),
            Some(origin) => {
                let closes = floor_to(ts, self.window, origin) + self.window;
                instants.extend([closes, closes + self.window]);
            }
        }
    }

    /// Whether a calendar window closes at `now`.
    pub fn closes_at(&self, now: i64) -> bool {
        self.calendar
            .is_some_and(|origin| (now - origin).rem_euclid(self.window) == 0)
    }
}

/// (bucket start, count or sum), oldest first: one pointer while empty.
pub type Counts = ThinVec<(i64, f64)>;
/// Key -> V, allocated at the first key and let go with the last: every tenant holds
/// a state per measure, most of them empty.
pub type Keyed<V> = Option<Box<HashMap<Box<str>, V>>>;

/// A measure's state for one tenant.
#[derive(Clone, PartialEq, Debug)]
pub enum State {
    Buckets(Counts),
    /// Key -> when it was last seen (distinct) or opened (open items).
    Keys(Keyed<i64>),
    /// Key -> its counts.
    Shares(Keyed<Counts>),
    /// The latest value and the one before it; None before the first.
    Latest(Option<Box<(Option<Reading>, Option<Reading>)>>),
    /// The latest event's time.
    Last(Option<i64>),
    /// The date the latest event carried.
    Deadline(Option<i64>),
    /// Key -> its latest value; None before the first event.
    States(Option<Box<HashMap<Box<str>, Reading>>>),
    /// None before the first event.
    Process(Option<Box<Process>>),
}

/// A process's state.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct Process {
    pub started: Option<i64>,
    pub completed: bool,
    /// When it last progressed: its start, or its latest event since.
    pub last_progress: Option<i64>,
    /// The steps done, as their events named them.
    pub steps: HashSet<Box<str>>,
    /// The last progress before the latest stretch a stall was signalled of.
    pub signalled_through: Option<i64>,
}

impl Process {
    pub fn is_open(&self) -> bool {
        self.started.is_some() && !self.completed
    }

    /// How many of `steps` (distinct) are done.
    pub fn done(&self, steps: &[Box<str>]) -> usize {
        steps.iter().filter(|s| self.steps.contains(*s)).count()
    }
}

/// What an event does to a measure.
pub enum Touch {
    /// One of the measure's own events, with the field's value (None for kinds without
    /// a field).
    Feed(Option<Reading>),
    /// A `closed_by` event of open items or states, with the item's key.
    Close(Reading),
    /// An event of a states measure: the key, and its value.
    Put(Reading, Option<Reading>),
    /// A process's `started_by` and `completed_by` events.
    Start,
    Complete,
}

impl Touch {
    /// The key it may add, if any: what a refused key names.
    pub fn key(&self) -> Option<&Reading> {
        match self {
            Touch::Feed(reading) => reading.as_ref(),
            Touch::Put(key, _) => Some(key),
            _ => None,
        }
    }
}

impl State {
    pub fn new(kind: Kind) -> State {
        match kind {
            Kind::Count | Kind::Sum | Kind::Days => State::Buckets(ThinVec::new()),
            Kind::Distinct | Kind::OpenItems | Kind::OldestOpen => State::Keys(None),
            Kind::TopShare => State::Shares(None),
            Kind::Latest => State::Latest(None),
            Kind::DaysSince => State::Last(None),
            Kind::DaysUntil => State::Deadline(None),
            Kind::States => State::States(None),
            Kind::Process => State::Process(None),
        }
    }

    /// Fold in one of its events that it reads nothing of (most events: a session
    /// counts), without a touch made for it.
    pub fn feed(&mut self, spec: &Spec, ts: i64) {
        match self {
            State::Buckets(buckets) if spec.kind == Kind::Count => {
                add_at(buckets, spec, ts, 1.0);
            }
            State::Last(last) => *last = Some(last.map_or(ts, |at| at.max(ts))),
            _ => {
                self.apply(spec, ts, Touch::Feed(None), usize::MAX);
            }
        }
    }

    /// Fold an event in; false when it named a new key past `max_keys` (not kept).
    pub fn apply(&mut self, spec: &Spec, ts: i64, touch: Touch, max_keys: usize) -> bool {
        match (self, touch) {
            (State::Buckets(buckets), Touch::Feed(reading)) => {
                let amount = match spec.kind {
                    Kind::Sum => match reading.as_ref().and_then(Reading::num) {
                        Some(x) => x,
                        None => return true, // not a number: nothing to add
                    },
                    _ => 1.0,
                };
                add_at(buckets, spec, ts, amount);
                true
            }
            (State::Keys(keys), Touch::Feed(Some(reading))) => {
                let keys = keys.get_or_insert_with(Box::default);
                // Looked up as it came, made a key only when new.
                let found = match &reading {
                    Reading::Text(text) => keys.get_mut(&**text),
                    Reading::Num(_) => keys.get_mut(&*reading.key()),
                };
                if let Some(at) = found {
                    if spec.kind == Kind::Distinct {
                        *at = (*at).max(ts);
                    }
                    return true;
                }
                if keys.len() >= max_keys {
                    return false;
                }
                let key = match reading {
                    Reading::Text(text) => text,
                    number => number.key(),
                };
                keys.insert(key, ts);
                true
            }
            (State::Keys(keys), Touch::Put(key, value)) => {
                // An item held since the first event that put it in a held value.
                let held =
                    matches!(&value, Some(Reading::Text(text)) if spec.held_while.contains(text));
                let key = key.key();
                match keys {
                    Some(items) if !held => {
                        items.remove(&key);
                        if items.is_empty() {
                            *keys = None;
                        }
                    }
                    None if !held => {}
                    _ => {
                        let items = keys.get_or_insert_with(Box::default);
                        if !items.contains_key(&key) {
                            if items.len() >= max_keys {
                                return false;
                            }
                            items.insert(key, ts);
                        }
                    }
                }
                true
            }
            (State::Keys(keys), Touch::Close(reading)) => {
                if let Some(held) = keys {
                    held.remove(&reading.key());
                    if held.is_empty() {
                        *keys = None;
                    }
                }
                true
            }
            (State::Shares(shares), Touch::Feed(Some(reading))) => {
                let shares = shares.get_or_insert_with(Box::default);
                let bucket = spec.bucket_start(ts);
                let full = shares.len() >= max_keys;
                // Looked up as it came, made a key only when new (as a distinct's).
                let found = match &reading {
                    Reading::Text(text) => shares.get_mut(&**text),
                    Reading::Num(_) => shares.get_mut(&*reading.key()),
                };
                match found {
                    Some(counts) => add(counts, bucket, 1.0),
                    None if full => return false,
                    None => {
                        let key = match reading {
                            Reading::Text(text) => text,
                            number => number.key(),
                        };
                        let mut counts = Counts::new();
                        counts.push((bucket, 1.0));
                        shares.insert(key, counts);
                    }
                }
                true
            }
            (State::Latest(held), Touch::Feed(Some(reading))) => {
                let held = held.get_or_insert_with(Box::default);
                held.1 = held.0.replace(reading);
                true
            }
            (State::Deadline(deadline), Touch::Feed(Some(Reading::Text(text)))) => {
                if let Some(at) = crate::intake::date_millis(&text) {
                    *deadline = Some(at);
                }
                true
            }
            (State::Last(last), Touch::Feed(_)) => {
                *last = Some(last.map_or(ts, |at| at.max(ts)));
                true
            }
            (State::States(held), touch) => {
                let held = held.get_or_insert_with(Default::default);
                match touch {
                    Touch::Put(key, Some(value)) => {
                        let kept = spec.held_while.is_empty()
                            || matches!(&value, Reading::Text(text) if spec.held_while.contains(text));
                        let key = key.key();
                        if !kept {
                            held.remove(&key);
                        } else if let Some(at) = held.get_mut(&key) {
                            *at = value;
                        } else if held.len() >= max_keys {
                            return false;
                        } else {
                            held.insert(key, value);
                        }
                    }
                    Touch::Close(key) => {
                        held.remove(&key.key());
                    }
                    _ => {} // an event without the value: seen, nothing held
                }
                true
            }
            (State::Process(process), touch) => {
                let process = process.get_or_insert_with(Default::default);
                let mut kept = true;
                match touch {
                    Touch::Start => {
                        if process.started.is_none() {
                            // a resent start does not restart the clock
                            process.started = Some(ts);
                            process.last_progress = Some(ts);
                        }
                        return true;
                    }
                    Touch::Complete => {
                        process.completed = true;
                        return true;
                    }
                    Touch::Feed(Some(step)) => {
                        let step = step.key();
                        if !process.steps.contains(&step) {
                            kept = process.steps.len() < max_keys;
                            if kept {
                                process.steps.insert(step);
                            }
                        }
                    }
                    _ => {}
                }
                if process.is_open() {
                    process.last_progress = Some(ts); // a refused step is still progress
                }
                kept
            }
            _ => true, // an event without the field
        }
    }

    /// The measure's value at `now`; None when it has none (no data).
    pub fn value(&self, spec: &Spec, now: i64) -> Option<f64> {
        match self {
            State::Buckets(buckets) if spec.kind == Kind::Days => {
                let (first, end) = (spec.first_bucket(now), spec.end(now));
                let days = buckets
                    .iter()
                    .filter(|(b, n)| *b >= first && *b < end && *n > 0.0);
                Some(days.count() as f64)
            }
            State::Buckets(buckets) => {
                let (first, end) = (spec.first_bucket(now), spec.end(now));
                let in_window = buckets.iter().filter(|(b, _)| *b >= first && *b < end);
                Some(total(in_window.map(|(b, n)| n * spec.decay(*b, end))))
            }
            State::Keys(keys) => match spec.kind {
                Kind::Distinct if spec.half_life > 0 => {
                    let (first, end) = (spec.first_bucket(now), spec.end(now));
                    let seen = values(keys).filter(|at| **at >= first);
                    Some(total(
                        seen.map(|at| spec.decay(spec.bucket_start(*at), end)),
                    ))
                }
                Kind::Distinct => {
                    let first = spec.first_bucket(now);
                    Some(values(keys).filter(|at| **at >= first).count() as f64)
                }
                Kind::OldestOpen => values(keys)
                    .min()
                    .map(|opened| (now - opened) as f64 / crate::tenant::MS_PER_DAY as f64),
                _ => Some(held_len(keys) as f64),
            },
            State::Shares(shares) => {
                let (first, end) = (spec.first_bucket(now), spec.end(now));
                let in_window = |counts: &Counts| -> f64 {
                    total(
                        counts
                            .iter()
                            .filter(|(b, _)| *b >= first && *b < end)
                            .map(|(_, n)| *n),
                    )
                };
                let (top, total) = values(shares)
                    .map(in_window)
                    .fold((0.0_f64, 0.0_f64), |(top, total), n| {
                        (top.max(n), total + n)
                    });
                (total > 0.0).then(|| top / total)
            }
            State::Latest(held) => held.as_ref()?.0.as_ref().and_then(Reading::num),
            State::Last(last) => {
                last.map(|at| (now - at) as f64 / crate::tenant::MS_PER_DAY as f64)
            }
            State::Deadline(deadline) => {
                deadline.map(|at| (at - now) as f64 / crate::tenant::MS_PER_DAY as f64)
            }
            State::States(held) => held.as_ref().map(|held| held.len() as f64),
            State::Process(process) => process
                .as_deref()
                .filter(|p| p.is_open())
                .map(|p| p.done(&spec.steps) as f64),
        }
    }

    /// A count's or sum's value over the window before the one that ends at `now`.
    pub fn previous_window(&self, spec: &Spec, now: i64) -> Option<f64> {
        let State::Buckets(buckets) = self else {
            return None;
        };
        let end = spec.first_bucket(now);
        let first = end - spec.window;
        let in_it = buckets.iter().filter(|(b, _)| *b >= first && *b < end);
        Some(total(in_it.map(|(_, n)| *n)))
    }

    /// A count's or sum's past calendar windows before the one counted at `now`, the
    /// latest `n` of them, none starting before `since`: in no order.
    pub fn past_windows(&self, spec: &Spec, now: i64, n: usize, since: i64) -> Vec<f64> {
        let (State::Buckets(buckets), Some(origin)) = (self, spec.calendar) else {
            return Vec::new();
        };
        let start = spec.first_bucket(now);
        let since = floor_to(since, spec.window, origin);
        let held = ((start - since) / spec.window).clamp(0, n as i64) as usize;
        let mut sums = vec![0.0; held];
        let first = start - held as i64 * spec.window;
        for (bucket, count) in buckets.iter().filter(|(b, _)| *b >= first && *b < start) {
            sums[((bucket - first) / spec.window) as usize] += count;
        }
        sums
    }

    /// How many keys it holds (0 for states without keys).
    pub fn keys_held(&self) -> usize {
        match self {
            State::Keys(keys) => held_len(keys),
            State::Shares(shares) => held_len(shares),
            State::States(Some(held)) => held.len(),
            State::Process(Some(process)) => process.steps.len(),
            _ => 0,
        }
    }

    /// A states measure's keys and values.
    pub fn held(&self) -> Option<&HashMap<Box<str>, Reading>> {
        match self {
            State::States(held) => held.as_deref(),
            _ => None,
        }
    }

    /// A process, while open.
    pub fn open_process(&self) -> Option<&Process> {
        match self {
            State::Process(process) => process.as_deref().filter(|p| p.is_open()),
            _ => None,
        }
    }

    /// The time a measure of time counts from or to: the latest event (days since), the
    /// oldest open item's opening (oldest open), the date (days until).
    pub fn time_held(&self) -> Option<i64> {
        match self {
            State::Last(last) => *last,
            State::Deadline(date) => *date,
            State::Keys(keys) => values(keys).min().copied(),
            State::Process(_) => self.open_process().and_then(|p| p.last_progress),
            _ => None,
        }
    }

    /// The times what it holds was bucketed or seen at (see Spec::moves).
    pub fn times(&self) -> Vec<i64> {
        match self {
            State::Buckets(buckets) => buckets.iter().map(|(b, _)| *b).collect(),
            State::Keys(keys) => values(keys).copied().collect(),
            State::Shares(shares) => values(shares)
                .flat_map(|counts| counts.iter().map(|(b, _)| *b))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// A latest measure's value and the one before it.
    pub fn readings(&self) -> (Option<&Reading>, Option<&Reading>) {
        match self {
            State::Latest(Some(held)) => (held.0.as_ref(), held.1.as_ref()),
            _ => (None, None),
        }
    }

    /// Drop what can no longer count at `now` or later.
    pub fn prune(&mut self, spec: &Spec, now: i64) {
        if spec.window == 0 {
            return;
        }
        let first = spec.first_bucket(now) - (spec.windows_kept - 1) * spec.window;
        match self {
            State::Buckets(buckets) => drop_before(buckets, first),
            State::Keys(keys) if spec.kind == Kind::Distinct => {
                if let Some(held) = keys {
                    held.retain(|_, at| *at >= first);
                    if held.is_empty() {
                        *keys = None;
                    }
                }
            }
            State::Shares(shares) => {
                if let Some(held) = shares {
                    held.retain(|_, counts| {
                        drop_before(counts, first);
                        !counts.is_empty()
                    });
                    if held.is_empty() {
                        *shares = None;
                    }
                }
            }
            _ => {}
        }
    }
}

/// A sum that is 0, not Rust's -0.0, over nothing (a count of no events is said "0.0").
pub fn total(values: impl Iterator<Item = f64>) -> f64 {
    values.fold(0.0, |sum, x| sum + x)
}

/// The values of keyed state, none while it holds no key.
pub fn values<V>(keyed: &Keyed<V>) -> impl Iterator<Item = &V> {
    keyed.iter().flat_map(|held| held.values())
}

/// How many keys keyed state holds.
fn held_len<V>(keyed: &Keyed<V>) -> usize {
    keyed.as_ref().map_or(0, |held| held.len())
}

/// Add to the bucket of an event at `ts`: most often the latest one, known without
/// working out where its bucket starts.
fn add_at(buckets: &mut Counts, spec: &Spec, ts: i64, amount: f64) {
    if let Some((start, n)) = buckets.last_mut() {
        if *start <= ts && ts < *start + spec.bucket {
            *n += amount;
            return;
        }
    }
    add(buckets, spec.bucket_start(ts), amount);
}

/// Add to a bucket of counts kept in time order (events come in time order per tenant).
fn add(buckets: &mut Counts, bucket: i64, amount: f64) {
    match buckets.iter_mut().rev().find(|(b, _)| *b == bucket) {
        Some((_, n)) => *n += amount,
        None => {
            let at = buckets.partition_point(|(b, _)| *b < bucket);
            buckets.insert(at, (bucket, amount));
        }
    }
}

fn drop_before(buckets: &mut Counts, first: i64) {
    let gone = buckets.partition_point(|(b, _)| *b < first);
    if gone == buckets.len() {
        *buckets = Counts::new(); // let its allocation go
    } else {
        buckets.drain(..gone);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = crate::tenant::MS_PER_DAY;

    fn spec(kind: Kind, days: i64) -> Spec {
        Spec::new(kind, days * DAY, DAY)
    }

    fn text(value: &str) -> Option<Reading> {
        Some(Reading::Text(value.into()))
    }

    #[test]
    fn a_count_holds_the_last_whole_days_of_its_window() {
        let spec = spec(Kind::Count, 2);
        let mut state = State::new(spec.kind);
        for day in [0, 1, 1] {
            state.apply(&spec, day * DAY + 5, Touch::Feed(None), 10);
        }
        assert_eq!(state.value(&spec, 2 * DAY), Some(3.0)); // days 0 and 1
        state.apply(&spec, 2 * DAY + 5, Touch::Feed(None), 10);
        assert_eq!(state.value(&spec, 3 * DAY), Some(3.0)); // days 1 and 2
        state.prune(&spec, 3 * DAY);
        assert_eq!(
            state,
            State::Buckets(ThinVec::from(vec![(DAY, 2.0), (2 * DAY, 1.0)]))
        );
    }

    #[test]
    fn a_count_kept_for_two_windows_gives_the_window_before() {
        let spec = Spec {
            windows_kept: 2,
            ..spec(Kind::Count, 2)
        };
        let mut state = State::new(spec.kind);
        for day in [0, 1, 1, 2, 3] {
            state.apply(&spec, day * DAY + 5, Touch::Feed(None), 10);
        }
        state.prune(&spec, 4 * DAY);
        assert_eq!(state.value(&spec, 4 * DAY), Some(2.0)); // days 2 and 3
        assert_eq!(state.previous_window(&spec, 4 * DAY), Some(3.0)); // days 0 and 1
    }

    #[test]
    fn a_calendar_count_is_of_the_last_closed_window() {
        let spec = Spec {
            calendar: Some(DAY), // windows of 2 days from day 1
            windows_kept: 2,
            ..spec(Kind::Count, 2)
        };
        let mut state = State::new(spec.kind);
        for day in [1, 2, 2, 3, 4] {
            state.apply(&spec, day * DAY + 5, Touch::Feed(None), 10);
        }
        assert!(spec.closes_at(5 * DAY) && !spec.closes_at(4 * DAY));
        assert_eq!(state.value(&spec, 5 * DAY), Some(2.0)); // days 3 and 4
        assert_eq!(state.value(&spec, 4 * DAY + 5), Some(3.0)); // days 1 and 2, still
        assert_eq!(state.previous_window(&spec, 5 * DAY), Some(3.0));
    }

    #[test]
    fn past_calendar_windows_start_with_the_tenant() {
        let spec = Spec {
            calendar: Some(0),
            windows_kept: 4,
            ..spec(Kind::Count, 1)
        };
        let mut state = State::new(spec.kind);
        for day in [1, 1, 3, 4] {
            state.apply(&spec, day * DAY + 5, Touch::Feed(None), 10);
        }
        // At day 5 the window counted is day 4; before it days 3, 2 and 1.
        assert_eq!(state.value(&spec, 5 * DAY), Some(1.0));
        assert_eq!(
            state.past_windows(&spec, 5 * DAY, 3, 0),
            vec![2.0, 0.0, 1.0]
        );
        assert_eq!(
            state.past_windows(&spec, 5 * DAY, 9, 0).len(),
            4,
            "from day 0"
        );
        let since_day_2 = state.past_windows(&spec, 5 * DAY, 9, 2 * DAY + 7);
        assert_eq!(
            since_day_2,
            vec![0.0, 1.0],
            "the window the tenant began in counts"
        );
        assert!(state.past_windows(&spec, 5 * DAY, 9, 6 * DAY).is_empty());
    }

    #[test]
    fn a_state_is_small_as_every_tenant_holds_one_per_measure() {
        assert!(std::mem::size_of::<State>() <= 24);
    }

    #[test]
    fn a_count_of_nothing_is_zero_not_minus_zero() {
        let spec = spec(Kind::Count, 1);
        let value = State::new(spec.kind).value(&spec, DAY).expect("a count");
        assert!(value == 0.0 && value.is_sign_positive());
    }

    #[test]
    fn a_sum_adds_numbers_and_skips_the_rest() {
        let spec = spec(Kind::Sum, 1);
        let mut state = State::new(spec.kind);
        state.apply(&spec, 5, Touch::Feed(Some(Reading::Num(2.5))), 10);
        state.apply(&spec, 6, Touch::Feed(text("x")), 10);
        assert_eq!(state.value(&spec, DAY), Some(2.5));
    }

    #[test]
    fn distinct_values_leave_with_their_last_sighting_and_keys_are_bounded() {
        let spec = spec(Kind::Distinct, 2);
        let mut state = State::new(spec.kind);
        assert!(state.apply(&spec, 5, Touch::Feed(text("u1")), 2));
        assert!(state.apply(&spec, DAY + 5, Touch::Feed(text("u2")), 2));
        assert!(!state.apply(&spec, DAY + 6, Touch::Feed(text("u3")), 2));
        assert!(state.apply(&spec, 2 * DAY + 5, Touch::Feed(text("u2")), 2));
        assert_eq!(state.value(&spec, 2 * DAY), Some(2.0));
        assert_eq!(state.value(&spec, 3 * DAY), Some(1.0)); // u1 was seen on day 0 only
    }

    #[test]
    fn the_top_share_is_of_the_windows_events() {
        let spec = spec(Kind::TopShare, 7);
        let mut state = State::new(spec.kind);
        assert_eq!(state.value(&spec, DAY), None);
        for user in ["a", "a", "a", "b"] {
            state.apply(&spec, 5, Touch::Feed(text(user)), 10);
        }
        assert_eq!(state.value(&spec, DAY), Some(0.75));
    }

    #[test]
    fn the_latest_keeps_the_one_before() {
        let spec = spec(Kind::Latest, 0);
        let mut state = State::new(spec.kind);
        state.apply(&spec, 5, Touch::Feed(Some(Reading::Num(9.0))), 10);
        state.apply(&spec, 6, Touch::Feed(Some(Reading::Num(4.0))), 10);
        assert_eq!(state.value(&spec, DAY), Some(4.0));
        let (latest, previous) = state.readings();
        assert_eq!(
            (latest, previous),
            (Some(&Reading::Num(4.0)), Some(&Reading::Num(9.0)))
        );
    }

    #[test]
    fn open_items_close_by_key() {
        let spec = spec(Kind::OpenItems, 0);
        let mut state = State::new(spec.kind);
        state.apply(&spec, 5, Touch::Feed(text("k1")), 10);
        state.apply(&spec, 6, Touch::Feed(text("k2")), 10);
        state.apply(&spec, 7, Touch::Close(Reading::Text("k1".into())), 10);
        assert_eq!(state.value(&spec, DAY), Some(1.0));
    }

    #[test]
    fn days_until_counts_to_the_latest_date_sent() {
        let spec = spec(Kind::DaysUntil, 0);
        let mut state = State::new(spec.kind);
        let date = |value: &str| Touch::Feed(text(value));
        state.apply(&spec, 5, date("1970-01-31"), 10);
        assert_eq!(state.value(&spec, DAY), Some(29.0));
        state.apply(&spec, 6, date("1970-01-11T00:00:00Z"), 10);
        assert_eq!(state.value(&spec, DAY), Some(9.0)); // the latest, not the furthest
        state.apply(&spec, 7, date("not a date"), 10);
        assert_eq!(state.value(&spec, 12 * DAY), Some(-2.0));
    }

    #[test]
    fn the_oldest_open_item_ages_until_it_closes() {
        let spec = spec(Kind::OldestOpen, 0);
        let mut state = State::new(spec.kind);
        assert_eq!(state.value(&spec, DAY), None);
        state.apply(&spec, 0, Touch::Feed(text("k1")), 10);
        state.apply(&spec, DAY, Touch::Feed(text("k2")), 10);
        assert_eq!(state.value(&spec, 3 * DAY), Some(3.0));
        state.apply(&spec, 3 * DAY, Touch::Close(Reading::Text("k1".into())), 10);
        assert_eq!(state.value(&spec, 3 * DAY), Some(2.0));
    }

    #[test]
    fn an_item_held_by_its_value_ages_from_the_first_event_that_held_it() {
        let spec = Spec {
            held_while: vec!["overdue".into(), "failed".into()],
            ..spec(Kind::OldestOpen, 0)
        };
        let put = |status: &str| Touch::Put(Reading::Text("i1".into()), text(status));
        let mut state = State::new(spec.kind);
        state.apply(&spec, 0, put("issued"), 10);
        assert_eq!(state.value(&spec, DAY), None); // issued is not held
        state.apply(&spec, DAY, put("overdue"), 10);
        state.apply(&spec, 2 * DAY, put("failed"), 10); // still held, from the first
        assert_eq!(state.value(&spec, 4 * DAY), Some(3.0));
        state.apply(&spec, 4 * DAY, put("paid"), 10);
        assert_eq!(state.value(&spec, 5 * DAY), None);
    }

    #[test]
    fn days_count_the_days_with_an_event_once_each() {
        let spec = spec(Kind::Days, 7);
        let mut state = State::new(spec.kind);
        for at in [0, DAY / 24, DAY, 3 * DAY, 3 * DAY + DAY / 24] {
            state.apply(&spec, at, Touch::Feed(None), 10);
        }
        assert_eq!(state.value(&spec, 4 * DAY), Some(3.0)); // days 0, 1 and 3
        assert_eq!(state.value(&spec, 9 * DAY), Some(1.0)); // days 0 and 1 left the window
    }

    #[test]
    fn days_since_counts_from_the_latest_event() {
        let spec = spec(Kind::DaysSince, 0);
        let mut state = State::new(spec.kind);
        assert_eq!(state.value(&spec, DAY), None);
        state.apply(&spec, DAY, Touch::Feed(None), 10);
        assert_eq!(state.value(&spec, 3 * DAY), Some(2.0));
    }

    #[test]
    fn states_hold_each_keys_latest_value_while_it_is_held() {
        let spec = Spec {
            held_while: vec!["overdue".into(), "failed".into()],
            ..spec(Kind::States, 0)
        };
        let mut state = State::new(spec.kind);
        assert_eq!(state.value(&spec, DAY), None, "none before its first event");
        let put = |key: &str, value: &str| Touch::Put(Reading::Text(key.into()), text(value));
        state.apply(&spec, 1, put("i1", "issued"), 2);
        assert_eq!(state.value(&spec, DAY), Some(0.0), "seen, nothing held");
        state.apply(&spec, 2, put("i1", "overdue"), 2);
        state.apply(&spec, 3, put("i2", "failed"), 2);
        assert!(
            !state.apply(&spec, 4, put("i3", "failed"), 2),
            "past max_keys"
        );
        state.apply(&spec, 5, put("i1", "failed"), 2);
        let held = state.held().expect("held");
        assert_eq!(held.get("i1"), Some(&Reading::Text("failed".into())));
        state.apply(&spec, 6, put("i2", "paid"), 2);
        state.apply(&spec, 7, Touch::Close(Reading::Text("i1".into())), 2);
        assert_eq!(state.value(&spec, DAY), Some(0.0));
    }

    #[test]
    fn a_process_counts_its_steps_done_while_open() {
        let spec = Spec {
            steps: vec!["a".into(), "b".into()],
            ..spec(Kind::Process, 0)
        };
        let mut state = State::new(spec.kind);
        state.apply(&spec, 1, Touch::Feed(text("a")), 10); // before the start: kept
        assert_eq!(state.value(&spec, DAY), None, "not started");
        state.apply(&spec, 2, Touch::Start, 10);
        state.apply(&spec, 3, Touch::Feed(text("x")), 10);
        assert_eq!(
            state.value(&spec, DAY),
            Some(1.0),
            "x is not one of its steps"
        );
        assert_eq!(state.time_held(), Some(3));
        state.apply(&spec, 4, Touch::Start, 10);
        assert_eq!(state.time_held(), Some(3), "a resent start is no progress");
        state.apply(&spec, 5, Touch::Complete, 10);
        assert_eq!((state.value(&spec, DAY), state.time_held()), (None, None));
    }
}
