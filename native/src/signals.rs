//! The percentile a signal compares a tenant's window with its own history by.

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
