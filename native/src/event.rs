//! The Python types the core reads and makes: vigil.intake.events.Event and
//! vigil.intake.reader.Tick. They are NamedTuples, read by position for speed; their
//! fields are checked against these names once, when a core or a decoder is made, so a
//! field moved on the Python side stops Vigil at start instead of misreading events.

use pyo3::prelude::*;

pub const EVENT_FIELDS: [&str; 10] = [
    "event_id",
    "type",
    "tenant_id",
    "ts",
    "user_id",
    "attrs",
    "segment",
    "wm",
    "source",
    "position",
];
pub const EVENT_ID: usize = 0;
pub const TYPE: usize = 1;
pub const TENANT_ID: usize = 2;
pub const TS: usize = 3;
pub const USER_ID: usize = 4;
pub const ATTRS: usize = 5;
pub const SEGMENT: usize = 6;
pub const WM: usize = 7;

pub const TICK_FIELDS: [&str; 3] = ["source", "wm", "sources"];
pub const TICK_SOURCE: usize = 0;
pub const TICK_WM: usize = 1;
pub const TICK_SOURCES: usize = 2;

/// Whether `cls`'s first fields are `expected`, in order.
pub fn check_fields(cls: &Bound<'_, PyAny>, expected: &[&str]) -> PyResult<()> {
    let fields: Vec<String> = cls.getattr("_fields")?.extract()?;
    if fields.len() < expected.len() || fields[..expected.len()] != *expected {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "{}.{} has the fields {}; the compiled core reads {} in that order",
            cls.getattr("__module__")?,
            cls.getattr("__qualname__")?,
            fields.join(", "),
            expected.join(", "),
        )));
    }
    Ok(())
}
