//! Whether the built-in signals fire: a closed login window against the one before, and
//! a closed error window against the tenant's own history. vigil.rules.signals says
//! what they found, in the records' evidence.

/// signals.login_drop
pub struct LoginDropRule {
    pub drop_ratio: f64,
    pub min_baseline: i64,
}

/// signals.error_spike
pub struct ErrorSpikeRule {
    pub percentile: f64,
    pub min_history_windows: usize,
    pub min_errors: i64,
}

/// Sessions in the latest closed window below `drop_ratio` of the window before, when
/// the window before had at least `min_baseline` sessions.
pub fn login_dropped(sessions: i64, previous: i64, rule: &LoginDropRule) -> bool {
    previous >= rule.min_baseline
        && previous > 0
        && (sessions as f64) < previous as f64 * rule.drop_ratio
}

/// Errors in the latest closed window above the percentile of the tenant's past windows
/// (zeros included), with enough of them and at least `min_errors`: the percentile's
/// value if so.
pub fn error_spike(errors: i64, history: &[i64], rule: &ErrorSpikeRule) -> Option<f64> {
    if errors < rule.min_errors || history.len() < rule.min_history_windows {
        return None;
    }
    let past: Vec<f64> = history.iter().map(|n| *n as f64).collect();
    let value = percentile(past, rule.percentile);
    (errors as f64 > value).then_some(value)
}

/// The q-th percentile of non-empty values: linear interpolation between closest ranks
/// (numpy's default), computed in the order Python would, to the last bit.
pub fn percentile(mut values: Vec<f64>, q: f64) -> f64 {
    values.sort_unstable_by(f64::total_cmp);
    let rank = (values.len() - 1) as f64 * q / 100.0;
    let low = rank.floor() as usize;
    let high = (low + 1).min(values.len() - 1);
    values[low] + (values[high] - values[low]) * (rank - low as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOGIN: LoginDropRule = LoginDropRule {
        drop_ratio: 0.5,
        min_baseline: 10,
    };
    const ERRORS: ErrorSpikeRule = ErrorSpikeRule {
        percentile: 95.0,
        min_history_windows: 24,
        min_errors: 5,
    };

    #[test]
    fn a_login_drop_is_below_the_ratio_of_a_big_enough_window_before() {
        assert!(login_dropped(9, 20, &LOGIN));
        assert!(!login_dropped(10, 20, &LOGIN), "at the ratio is no drop");
        assert!(!login_dropped(0, 9, &LOGIN), "too small a window before");
        assert!(login_dropped(0, 10, &LOGIN));
        let no_baseline = LoginDropRule {
            min_baseline: 0,
            ..LOGIN
        };
        assert!(!login_dropped(0, 0, &no_baseline), "nothing to fall from");
    }

    #[test]
    fn an_error_spike_needs_history_a_floor_and_to_pass_the_percentile() {
        assert_eq!(
            error_spike(50, &[0; 23], &ERRORS),
            None,
            "too little history"
        );
        assert_eq!(error_spike(50, &[0; 24], &ERRORS), Some(0.0));
        assert_eq!(error_spike(4, &[0; 48], &ERRORS), None, "under min_errors");
        assert!(error_spike(5, &[0; 48], &ERRORS).is_some());
        let noisy: Vec<i64> = (0..48).map(|w| if w % 2 == 0 { 10 } else { 0 }).collect();
        assert_eq!(error_spike(10, &noisy, &ERRORS), None, "at the percentile");
        assert_eq!(error_spike(11, &noisy, &ERRORS), Some(10.0));
    }

    #[test]
    fn the_percentile_interpolates_between_ranks() {
        assert_eq!(percentile(vec![4.0, 1.0, 3.0, 2.0], 50.0), 2.5);
        assert_eq!(
            percentile((0..101).rev().map(f64::from).collect(), 95.0),
            95.0
        );
        assert_eq!(percentile(vec![7.0], 95.0), 7.0);
    }
}
