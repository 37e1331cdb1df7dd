//! An HDR-style latency histogram in fixed memory: exact below 256 ns, then 128 linear
//! sub-buckets per power of two (relative error under 0.8 %), up to u64::MAX.

const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS; // 128 sub-buckets per power of two
const EXACT: u64 = 2 * SUB; // values below 256 have a bucket each
const BUCKETS: usize = (EXACT + (63 - SUB_BITS as u64) * SUB) as usize; // 7424

/// Counts of values (nanoseconds) in log-linear buckets.
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: vec![0; BUCKETS].into_boxed_slice(), total: 0, max: 0, sum: 0 }
    }
}

#[inline]
fn index(v: u64) -> usize {
    if v < EXACT {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros(); // >= 8
    let shift = msb - SUB_BITS; // >= 1
    let m = v >> shift; // in [128, 256)
    (EXACT + u64::from(shift - 1) * SUB + (m - SUB)) as usize
}

/// The highest value that falls in bucket `i`.
fn upper(i: usize) -> u64 {
    let i = i as u64;
    if i < EXACT {
        return i;
    }
    let j = i - EXACT;
    let shift = j / SUB + 1;
    let m = j % SUB + SUB;
    (((m + 1) as u128) << shift).saturating_sub(1).min(u128::from(u64::MAX)) as u64
}

impl Histogram {
    /// Adds one value.
    #[inline]
    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.total += 1;
        self.sum += u128::from(v);
        if v > self.max {
            self.max = v;
        }
    }

    /// How many values were recorded.
    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest value recorded (exact).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The mean (exact), 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.total == 0 { 0.0 } else { self.sum as f64 / self.total as f64 }
    }

    /// The value at quantile `q` (0..=1): the upper edge of the bucket holding the
    /// ceil(q * count)-th smallest value, capped at the exact maximum. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        let mut prev_upper = None;
        for i in 0..BUCKETS {
            let up = upper(i);
            if let Some(p) = prev_upper {
                assert!(up > p, "bucket {i}");
                assert_eq!(index(p + 1), i, "first value of bucket {i}");
            }
            assert_eq!(index(up), i);
            prev_upper = Some(up);
            if up == u64::MAX {
                break;
            }
        }
        for v in [0u64, 1, 255, 256, 257, 1000, 123_456_789, u64::MAX] {
            let up = upper(index(v));
            assert!(up >= v);
            assert!((up - v) as f64 <= v as f64 / 128.0 + 1.0, "{v}");
        }
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::default();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5) as f64;
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.01, "{p50}");
        let p99 = h.quantile(0.99) as f64;
        assert!((p99 - 990_000.0).abs() / 990_000.0 < 0.01, "{p99}");
        assert_eq!(h.quantile(1.0), 1_000_000);
        assert_eq!(h.count(), 1000);
    }
}
