//! Wall clock behind a trait, so that quota windows, month rollover and vault TTLs can
//! be tested with a fake clock instead of sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of Unix time in microseconds.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Microseconds since the Unix epoch.
    fn now_us(&self) -> u64;
}

/// The system wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_us(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Default)]
pub struct FakeClock(AtomicU64);

impl FakeClock {
    /// A fake clock at `now_us` microseconds since the epoch.
    pub fn new(now_us: u64) -> Self {
        Self(AtomicU64::new(now_us))
    }

    /// A fake clock at the given UTC date, midnight.
    pub fn at_date(year: i64, month: u32, day: u32) -> Self {
        let days = days_from_civil(year, month, day);
        Self::new(u64::try_from(days * DAY_US as i64).unwrap_or(0))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let us = u64::try_from(by.as_micros()).unwrap_or(u64::MAX);
        self.0.fetch_add(us, Ordering::SeqCst);
    }

    /// Sets the clock.
    pub fn set_us(&self, now_us: u64) {
        self.0.store(now_us, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now_us(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now_us(&self) -> u64 {
        (**self).now_us()
    }
}

/// Microseconds in one UTC day.
pub const DAY_US: u64 = 86_400_000_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let m = i64::from(month);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m as u32, d as u32)
}

/// UTC day index (days since the epoch) of a time.
pub fn day_index(now_us: u64) -> i64 {
    (now_us / DAY_US) as i64
}

/// UTC calendar month index (`year * 12 + month - 1`) of a time.
pub fn month_index(now_us: u64) -> i64 {
    let (y, m, _) = civil_from_days(day_index(now_us));
    y * 12 + i64::from(m) - 1
}

/// Time from `now_us` to the start of the next UTC day.
pub fn until_next_day(now_us: u64) -> Duration {
    Duration::from_micros(DAY_US - now_us % DAY_US)
}

/// Time from `now_us` to the start of the next UTC calendar month.
pub fn until_next_month(now_us: u64) -> Duration {
    let (y, m, _) = civil_from_days(day_index(now_us));
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let start = days_from_civil(ny, nm, 1).max(0) as u64 * DAY_US;
    Duration::from_micros(start.saturating_sub(now_us))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for days in (-800_000..800_000).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn known_dates() {
        let cases = [
            (0, (1970, 1, 1)),
            (19_782, (2024, 2, 29)),
            (19_783, (2024, 3, 1)),
            (20_453, (2025, 12, 31)),
        ];
        for (days, ymd) in cases {
            assert_eq!(civil_from_days(days), ymd);
        }
    }

    #[test]
    fn month_boundaries() {
        let jan31 = FakeClock::at_date(2025, 1, 31).now_us() + DAY_US - 1;
        let feb1 = jan31 + 1;
        assert_eq!(month_index(jan31), 2025 * 12);
        assert_eq!(month_index(feb1), 2025 * 12 + 1);
        assert_eq!(until_next_month(jan31), Duration::from_micros(1));
        // Leap year: February 2024 has 29 days.
        let feb1_24 = FakeClock::at_date(2024, 2, 1).now_us();
        assert_eq!(until_next_month(feb1_24), Duration::from_secs(29 * 86_400));
        assert_eq!(
            until_next_day(feb1_24 + 1),
            Duration::from_micros(DAY_US - 1)
        );
    }
}
