//! vigil/intake/events.py's common case, compiled: a decoded message that passes every check
//! of the catalogue becomes the same `Event` as `_decode` would make. Anything else (a
//! problem to explain, a rare spelling of a time, a check made only in Python) is left
//! to `_decode`, which stays the reference: tests compare the two on hostile input.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use rustc_hash::FxHashMap as HashMap;

/// What an attribute must be (vigil.intake.events.Check's kinds).
enum Check {
    Str,
    Name,
    Number,
    Int,
    OneOf(Vec<String>),
}

struct Attr {
    name: Py<PyString>,
    required: bool,
    check: Check,
}

#[pyclass(frozen)]
pub struct Decoder {
    event_type: Py<PyAny>,
    // tuple.__new__: makes an Event without running its Python constructor.
    tuple_new: Py<PyAny>,
    loads: Py<PyAny>,
    no_watermark: i64,
    segments: Vec<String>,
    max_id_length: usize,
    /// More attrs than this, a value nested in attrs, or a field outside the contract is
    /// left to Python, which checks the settings' bounds (vigil.intake.events.FEW_ATTRS,
    /// FLAT_DEPTH).
    few_attrs: usize,
    min_ms: i64,
    max_ms: i64,
    /// Per type with attributes, their checks; None for a type whose checks are made in
    /// Python only (a date, a score's range).
    attrs: HashMap<String, Option<Vec<Attr>>>,
}

/// Returns Ok(None) from the enclosing function when `$value` is None: the message is
/// left to Python.
macro_rules! or_leave {
    ($value:expr) => {
        match $value {
            Some(value) => value,
            None => return Ok(None),
        }
    };
}

type AttrSpec = (String, bool, String, Vec<String>);

#[pymethods]
impl Decoder {
    #[new]
    #[allow(clippy::too_many_arguments)] // what Python hands it once, at start
    fn new(
        py: Python<'_>,
        event_type: Py<PyAny>,
        segments: Vec<String>,
        max_id_length: usize,
        few_attrs: usize,
        epoch_range: (i64, i64),
        attrs: HashMap<String, Option<Vec<AttrSpec>>>,
        loads: Py<PyAny>,
        no_watermark: i64,
    ) -> PyResult<Self> {
        // The event is made in the order of crate::event::EVENT_FIELDS.
        crate::event::check_fields(event_type.bind(py), &crate::event::EVENT_FIELDS)?;
        let mut checks = HashMap::default();
        for (kind, spec) in attrs {
            let spec = match spec {
                None => None,
                Some(fields) => Some(
                    fields
                        .into_iter()
                        .map(|(name, required, check, choices)| {
                            let check = match check.as_str() {
                                "str" => Check::Str,
                                "name" => Check::Name,
                                "number" => Check::Number,
                                "int" => Check::Int,
                                "one_of" => Check::OneOf(choices),
                                other => {
                                    return Err(pyo3::exceptions::PyValueError::new_err(format!(
                                        "{kind}: attrs.{name}: no compiled check {other:?}"
                                    )))
                                }
                            };
                            Ok(Attr {
                                name: PyString::intern(py, &name).unbind(),
                                required,
                                check,
                            })
                        })
                        .collect::<PyResult<Vec<_>>>()?,
                ),
            };
            checks.insert(kind, spec);
        }
        let tuple_new = py.get_type::<PyTuple>().getattr("__new__")?.unbind();
        Ok(Decoder {
            event_type,
            tuple_new,
            loads,
            no_watermark,
            segments,
            max_id_length,
            few_attrs,
            min_ms: epoch_range.0,
            max_ms: epoch_range.1,
            attrs: checks,
        })
    }

    /// The Event `_decode` makes of `obj`, or None to leave `obj` to `_decode`.
    fn event<'py>(
        &self,
        obj: &Bound<'py, PyAny>,
        watermark: i64,
        source: &Bound<'py, PyAny>,
        position: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(self
            .checked(obj, watermark, source, position)?
            .map(|(event, _)| event))
    }

    /// vigil.intake.reader.Intake.take_lines: a file's lines after line `line`, blank ones
    /// (within the size limit) skipped, each other one taken as `intake.take` would;
    /// anything but the common valid event is handed to it. Returns the items and the
    /// last line's number.
    fn take_lines<'py>(
        &self,
        intake: &Bound<'py, PyAny>,
        lines: &Bound<'py, PyList>,
        mut line: i64,
    ) -> PyResult<(Bound<'py, PyList>, i64)> {
        let py = intake.py();
        let source = intake.getattr(intern!(py, "source"))?;
        let lateness: i64 = intake.getattr(intern!(py, "lateness"))?.extract()?;
        let max_bytes: Option<usize> = intake.getattr(intern!(py, "max_bytes"))?.extract()?;
        let max_future: Option<i64> = intake.getattr(intern!(py, "max_future"))?.extract()?;
        let max_ts_name = intern!(py, "max_ts");
        let mut max_ts: Option<i64> = intake.getattr(max_ts_name)?.extract()?;
        let out = PyList::empty(py);
        for raw in lines.iter() {
            line += 1;
            let bytes = raw.cast::<PyBytes>()?.as_bytes();
            let message = trim_line_end(bytes);
            let fits = max_bytes.is_none_or(|limit| message.len() <= limit);
            if fits && is_space(bytes) {
                continue; // a longer line is a dead letter, whatever it starts with
            }
            let position = PyDict::new(py);
            position.set_item(intern!(py, "file"), &source)?;
            position.set_item(intern!(py, "line"), line)?;
            let watermark = max_ts.map_or(self.no_watermark, |max| max - lateness);
            // The line as read: its line break is whitespace to JSON, and no copy is made.
            // A failure here leaves the line to Python's guarded reference (Intake.take).
            let taken = match fits {
                true => self
                    .decoded(&raw, watermark, &source, &position)
                    .unwrap_or(None),
                false => None,
            };
            let item = match taken {
                Some((event, ts)) if max_ts.is_none_or(|max| ts > max) => {
                    // Only a new highest event time can be from the future (Intake.take).
                    let future =
                        max_future.is_some_and(|ahead| ts as f64 > now_ms() + ahead as f64);
                    if future {
                        None
                    } else {
                        max_ts = Some(ts);
                        Some(event)
                    }
                }
                Some((event, _)) => Some(event),
                None => None,
            };
            let item = match item {
                Some(event) => event,
                None => {
                    intake.setattr(max_ts_name, max_ts)?;
                    let message = PyBytes::new(py, message);
                    let item = intake.call_method1(intern!(py, "take"), (message, position))?;
                    max_ts = intake.getattr(max_ts_name)?.extract()?;
                    item
                }
            };
            out.append(item)?;
        }
        intake.setattr(max_ts_name, max_ts)?;
        Ok((out, line))
    }
}

/// Whether a value nests: an array or an object.
fn nests(value: &Bound<'_, PyAny>) -> bool {
    value.is_instance_of::<PyDict>() || value.is_instance_of::<PyList>()
}

/// bytes.isspace(): not empty, and only ASCII whitespace (vertical tab included).
fn is_space(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|c| b" \t\n\r\x0b\x0c".contains(c))
}

/// bytes.rstrip(b"\r\n")
fn trim_line_end(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|c| !matches!(c, b'\r' | b'\n'))
        .map_or(0, |i| i + 1);
    &bytes[..end]
}

/// time.time() * 1000
fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64() * 1000.0)
}

/// Some(None) for an absent or null value, Some(value) for one that passes `ok`, None
/// (leave it to Python) for one that does not.
fn optional<'py>(
    value: Option<Bound<'py, PyAny>>,
    ok: impl Fn(&Bound<'py, PyAny>) -> bool,
) -> Option<Option<Bound<'py, PyAny>>> {
    match value {
        None => Some(None),
        Some(value) if value.is_none() => Some(None),
        Some(value) if ok(&value) => Some(Some(value)),
        Some(_) => None,
    }
}

impl Decoder {
    /// orjson.loads(raw), then `checked`; None for anything to leave to Python,
    /// a message that is not JSON included.
    fn decoded<'py>(
        &self,
        raw: &Bound<'py, PyAny>,
        watermark: i64,
        source: &Bound<'py, PyAny>,
        position: &Bound<'py, PyAny>,
    ) -> PyResult<Option<(Bound<'py, PyAny>, i64)>> {
        match self.loads.bind(raw.py()).call1((raw,)) {
            Ok(obj) => self.checked(&obj, watermark, source, position),
            Err(_) => Ok(None), // Python's decode says what is wrong
        }
    }

    fn checked<'py>(
        &self,
        obj: &Bound<'py, PyAny>,
        watermark: i64,
        source: &Bound<'py, PyAny>,
        position: &Bound<'py, PyAny>,
    ) -> PyResult<Option<(Bound<'py, PyAny>, i64)>> {
        let py = obj.py();
        let obj = or_leave!(obj.cast_exact::<PyDict>().ok());
        let event_id = or_leave!(self.identifier(obj.get_item(intern!(py, "event_id"))?)?);
        let kind = or_leave!(self.identifier(obj.get_item(intern!(py, "type"))?)?);
        let tenant_id = or_leave!(self.identifier(obj.get_item(intern!(py, "tenant_id"))?)?);
        let user_id = obj.get_item(intern!(py, "user_id"))?;
        let attrs = obj.get_item(intern!(py, "attrs"))?;
        let segment = obj.get_item(intern!(py, "segment"))?;
        // Four required fields and the optional ones given: any other field is left to
        // Python, which checks how deep it nests.
        let fields = 4 + [&user_id, &attrs, &segment]
            .iter()
            .filter(|v| v.is_some())
            .count();
        if obj.len() != fields {
            return Ok(None);
        }
        let user_id = or_leave!(optional(user_id, |value| {
            value.is_exact_instance_of::<PyString>()
        }));
        let attrs = or_leave!(optional(attrs, |value| value.is_exact_instance_of::<PyDict>()));
        let segment = or_leave!(optional(segment, |value| {
            value
                .cast_exact::<PyString>()
                .ok()
                .and_then(|text| text.to_str().ok())
                .is_some_and(|text| self.segments.iter().any(|known| known == text))
        }));
        let ts = or_leave!(obj.get_item(intern!(py, "ts"))?);
        let millis = or_leave!(self.millis(&ts));
        let attrs = match attrs {
            Some(attrs) if attrs.len()? > self.few_attrs => return Ok(None),
            Some(attrs) if attrs.len()? > 0 => attrs.cast_into::<PyDict>()?,
            _ => PyDict::new(py),
        };
        if attrs.iter().any(|(_, value)| nests(&value)) {
            return Ok(None); // Python checks how deep it nests
        }
        let kind_text = or_leave!(kind.cast::<PyString>()?.to_str().ok());
        if let Some(spec) = self.attrs.get(kind_text) {
            let spec = or_leave!(spec.as_ref());
            for attr in spec {
                match attrs.get_item(attr.name.bind(py))? {
                    None => {
                        if attr.required {
                            return Ok(None);
                        }
                    }
                    Some(value) if value.is_none() => {
                        if attr.required {
                            return Ok(None);
                        }
                    }
                    Some(value) => {
                        if !self.passes(&attr.check, &value)? {
                            return Ok(None);
                        }
                    }
                }
            }
        }
        let none = || py.None().into_bound(py);
        let fields = (
            event_id,
            kind,
            tenant_id,
            millis,
            user_id.unwrap_or_else(none),
            attrs,
            segment.unwrap_or_else(none),
            watermark,
            source,
            position,
        );
        let event = self
            .tuple_new
            .bind(py)
            .call1((self.event_type.bind(py), fields))?;
        Ok(Some((event, millis)))
    }

    /// A string of 1 to max_id_length characters (as Python counts them).
    fn identifier<'py>(
        &self,
        value: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(match value {
            Some(value) if value.is_exact_instance_of::<PyString>() => {
                let chars = value.len()?;
                (chars > 0 && chars <= self.max_id_length).then_some(value)
            }
            _ => None,
        })
    }

    fn millis(&self, ts: &Bound<'_, PyAny>) -> Option<i64> {
        let millis = if let Ok(text) = ts.cast_exact::<PyString>() {
            rfc3339_millis(text.to_str().ok()?)?
        } else if ts.is_exact_instance_of::<PyInt>() {
            ts.extract::<i64>().ok()?
        } else {
            return None;
        };
        (self.min_ms <= millis && millis < self.max_ms).then_some(millis)
    }

    fn passes(&self, check: &Check, value: &Bound<'_, PyAny>) -> PyResult<bool> {
        let number = || value.is_instance_of::<PyInt>() && !value.is_instance_of::<PyBool>();
        Ok(match check {
            Check::Str => value.is_instance_of::<PyString>(),
            Check::Name => {
                value.is_instance_of::<PyString>() && {
                    let chars = value.len()?;
                    chars > 0 && chars <= self.max_id_length
                }
            }
            Check::Number => number() || value.is_instance_of::<PyFloat>(),
            Check::Int => number(),
            Check::OneOf(choices) => value
                .cast_exact::<PyString>()
                .ok()
                .and_then(|text| text.to_str().ok())
                .is_some_and(|text| choices.iter().any(|choice| choice == text)),
        })
    }
}

/// Epoch milliseconds of the common spellings of an RFC 3339 time, as
/// vigil.base.timeutil.parse_rfc3339 gives them: 2026-03-02T10:00:00(.fraction)(Z|+01:00),
/// `t` or a space for the `T`, `z` for the `Z`; the fraction cut at milliseconds. None
/// for anything else, valid (a leap second) or not: Python decides those.
pub fn rfc3339_millis(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = b.get(from..from + len)?;
        digits.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let at = |i: usize, allowed: &[u8]| b.get(i).is_some_and(|c| allowed.contains(c));
    if !(at(4, b"-") && at(7, b"-") && at(10, b"Tt ") && at(13, b":") && at(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut i = 19;
    let mut fraction_ms = 0;
    if at(i, b".") {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        for place in 0..3 {
            fraction_ms = fraction_ms * 10
                + if place < digits {
                    num(i + 1 + place, 1)?
                } else {
                    0
                };
        }
        i += 1 + digits;
    }
    let offset_s = if at(i, b"Zz") && b.len() == i + 1 {
        0
    } else if at(i, b"+-") && at(i + 3, b":") && b.len() == i + 6 {
        let (hours, minutes) = (num(i + 1, 2)?, num(i + 4, 2)?);
        if hours > 23 || minutes > 59 {
            return None;
        }
        let sign = if b[i] == b'-' { -1 } else { 1 };
        sign * (hours * 3600 + minutes * 60)
    } else {
        return None;
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some((seconds - offset_s) * 1000 + fraction_ms)
}

/// Epoch milliseconds of a date attribute (the catalogue's "date": 2026-12-31, midnight
/// UTC, or an RFC 3339 time as rfc3339_millis reads it).
pub fn date_millis(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 10 {
        return rfc3339_millis(text);
    }
    let num = |from: usize, len: usize| -> Option<i64> { text.get(from..from + len)?.parse().ok() };
    if b[4] != b'-'
        || b[7] != b'-'
        || !b
            .iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
    {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400_000)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard
/// Hinnant's days_from_civil).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::{days_from_civil, rfc3339_millis};

    #[test]
    fn reads_the_common_spellings_of_a_time() {
        let ms = 1_772_443_800_000; // 2026-03-02T09:30:00Z
        assert_eq!(rfc3339_millis("2026-03-02T09:30:00Z"), Some(ms));
        assert_eq!(rfc3339_millis("2026-03-02t09:30:00z"), Some(ms));
        assert_eq!(rfc3339_millis("2026-03-02 10:30:00+01:00"), Some(ms));
        assert_eq!(
            rfc3339_millis("2026-03-02T09:30:00.123456Z"),
            Some(ms + 123)
        );
        assert_eq!(
            rfc3339_millis("2026-03-02T09:30:00.5-00:00"),
            Some(ms + 500)
        );
    }

    #[test]
    fn leaves_anything_else_to_python() {
        for text in [
            "2026-03-02T09:30:00",       // no offset
            "2026-02-29T00:00:00Z",      // no such day
            "2026-06-30T23:59:60Z",      // a leap second: valid, read by Python
            "2026-03-02T09:30:00,5Z",    // a decimal comma
            "2026-03-02T09:30:00.Z",     // a point and no digits
            "2026-03-02T09:30:00+24:00", // an offset of a day
            "2026-03-02_09:30:00Z",
        ] {
            assert_eq!(rfc3339_millis(text), None, "{text}");
        }
    }

    #[test]
    fn counts_days_across_the_calendar_s_edges() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(
            days_from_civil(2000, 3, 1) - days_from_civil(2000, 2, 28),
            2
        ); // leap
        assert_eq!(
            days_from_civil(2100, 3, 1) - days_from_civil(2100, 2, 28),
            1
        ); // not
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }
}
