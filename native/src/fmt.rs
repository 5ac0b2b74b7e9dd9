//! Python's number formatting, where Vigil's records and reasons print numbers.

/// Python's `round(x, digits)` for a float: the nearest value with that many decimals,
/// ties to even on the exact binary value (Rust's exact formatting rounds the same way).
pub fn py_round(x: f64, digits: usize) -> f64 {
    if !x.is_finite() {
        return x;
    }
    format!("{x:.digits$}").parse().unwrap_or(x)
}

/// Python's `f"{x:.0f}"`.
pub fn f0(x: f64) -> String {
    format!("{x:.0}")
}

/// Python's `f"{x:g}"`: six significant digits, trailing zeros dropped, exponent form
/// below 1e-4 and from 1e6.
pub fn g(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let sci = format!("{x:.5e}"); // d.ddddde<exp>, correctly rounded to 6 digits
    let (mantissa, exp) = sci.split_once('e').expect("exponent");
    let exp: i32 = exp.parse().expect("exponent digits");
    if (-4..6).contains(&exp) {
        let decimals = (5 - exp) as usize;
        strip(format!("{x:.decimals$}"))
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", strip(mantissa.to_string()), exp.abs())
    }
}

fn strip(text: String) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// Python's `//` and `%` for a positive divisor: floor division, remainder >= 0.
pub fn floor_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b)
}

/// vigil.base.timeutil.floor_to
pub fn floor_to(ms: i64, step: i64, origin: i64) -> i64 {
    ms - (ms - origin).rem_euclid(step)
}

/// Python's `max(a, b)` and `min(a, b)` on floats: the first one on a tie.
pub fn py_max(a: f64, b: f64) -> f64 {
    if b > a {
        b
    } else {
        a
    }
}

pub fn py_min(a: f64, b: f64) -> f64 {
    if b < a {
        b
    } else {
        a
    }
}

/// vigil.base.timeutil.to_iso: epoch milliseconds as RFC 3339 UTC, milliseconds only when
/// needed. None outside years 1000-9999, which Python prints its own way.
pub fn to_iso(ms: i64) -> Option<String> {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if !(1000..=9999).contains(&year) {
        return None;
    }
    let (h, m, s) = (of_day / 3600, of_day % 3600 / 60, of_day % 60);
    Some(if millis != 0 {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
    } else {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
    })
}

/// The proleptic Gregorian date of a day count from 1970-01-01 (Howard Hinnant's
/// algorithm, public domain).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
