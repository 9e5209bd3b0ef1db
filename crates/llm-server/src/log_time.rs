//! Log timestamps as tracing-subscriber's `SystemTime` writes them, for less CPU.

use std::{cell::Cell, fmt, time::UNIX_EPOCH};

use tracing_subscriber::fmt::{format::Writer, time::FormatTime};

/// RFC 3339 in UTC with microseconds (`2026-12-01T17:41:00.123456Z`), the bytes
/// tracing-subscriber's `SystemTime` timer writes, with the date and the time of day
/// worked out once per second (per thread) instead of for every line: the timestamp was
/// ≈ 2,400 of the ≈ 11,000 instructions the INFO access line adds to a request
/// (`callgrind`). Times before 1970 or after 9999 (which it writes differently) go to
/// tracing-subscriber's own timer.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CachedUtc;

thread_local! {
    /// The whole second last written and its `YYYY-MM-DDTHH:MM:SS`.
    static LAST: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
}

/// Seconds of 9999-12-31T23:59:59Z: beyond it the year has more than four digits.
const LAST_FOUR_DIGIT_SECOND: u64 = 253_402_300_799;

impl FormatTime for CachedUtc {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let now = std::time::SystemTime::now();
        let Ok(since) = now.duration_since(UNIX_EPOCH) else {
            return tracing_subscriber::fmt::time::SystemTime.format_time(w);
        };
        let secs = since.as_secs();
        if secs > LAST_FOUR_DIGIT_SECOND {
            return tracing_subscriber::fmt::time::SystemTime.format_time(w);
        }
        let prefix = LAST.with(|last| {
            let (cached, prefix) = last.get();
            if cached == secs {
                return prefix;
            }
            let prefix = date_time(secs);
            last.set((secs, prefix));
            prefix
        });
        let mut line = [0_u8; 27];
        line[..19].copy_from_slice(&prefix);
        line[19] = b'.';
        digits(&mut line[20..26], since.subsec_micros());
        line[26] = b'Z';
        // Only ASCII digits and punctuation were written.
        w.write_str(std::str::from_utf8(&line).map_err(|_| fmt::Error)?)
    }
}

/// `YYYY-MM-DDTHH:MM:SS` of `secs` after the Unix epoch (UTC; years up to 9999).
fn date_time(secs: u64) -> [u8; 19] {
    let days = secs / 86_400;
    let of_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = *b"0000-00-00T00:00:00";
    digits(&mut out[0..4], year);
    digits(&mut out[5..7], month);
    digits(&mut out[8..10], day);
    digits(&mut out[11..13], u32::try_from(of_day / 3_600).unwrap_or(0));
    digits(
        &mut out[14..16],
        u32::try_from(of_day % 3_600 / 60).unwrap_or(0),
    );
    digits(&mut out[17..19], u32::try_from(of_day % 60).unwrap_or(0));
    out
}

/// The proleptic Gregorian (year, month, day) of a day count from 1970-01-01 (Howard
/// Hinnant's `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u32, u32, u32) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let small = |v: u64| u32::try_from(v).unwrap_or(0);
    (small(year), small(month), small(day))
}

/// `value`'s last `out.len()` decimal digits, zero-padded.
fn digits(out: &mut [u8], mut value: u32) {
    for byte in out.iter_mut().rev() {
        *byte = b'0' + u8::try_from(value % 10).unwrap_or(0);
        value /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(timer: &impl FormatTime) -> String {
        let mut line = String::new();
        timer.format_time(&mut Writer::new(&mut line)).unwrap();
        line
    }

    #[test]
    fn dates_and_times_of_day() {
        let at = |secs| String::from_utf8(date_time(secs).to_vec()).unwrap();
        assert_eq!(at(0), "1970-01-01T00:00:00");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(at(1_709_251_199), "2024-02-29T23:59:59");
        assert_eq!(at(1_796_146_860), "2026-12-01T17:41:00");
        assert_eq!(at(4_107_542_400), "2100-03-01T00:00:00");
        assert_eq!(at(LAST_FOUR_DIGIT_SECOND), "9999-12-31T23:59:59");
    }

    /// The same text as tracing-subscriber's timer, read at (nearly) the same moment.
    #[test]
    fn lines_match_tracing_subscribers_timer() {
        for _ in 0..100 {
            let theirs = format(&tracing_subscriber::fmt::time::SystemTime);
            let ours = format(&CachedUtc);
            let again = format(&tracing_subscriber::fmt::time::SystemTime);
            assert_eq!(ours.len(), theirs.len(), "{ours} / {theirs}");
            assert!(ours.ends_with('Z') && ours.as_bytes()[19] == b'.', "{ours}");
            // Equal up to the second unless a second ended between the two readings.
            if theirs[..19] == again[..19] {
                assert_eq!(ours[..19], theirs[..19]);
                assert!(theirs.as_str() <= ours.as_str() && ours.as_str() <= again.as_str());
            }
        }
    }
}
