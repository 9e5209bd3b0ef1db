//! How long an upstream asked us to wait.
//!
//! Headers are read in the order the official OpenAI SDK uses: `retry-after-ms` first (also
//! Azure's `x-ms-retry-after-ms`), then `retry-after` as delta-seconds (integer or
//! fractional) or as an HTTP-date. Where no header says it, [`from_message`] reads the hint
//! that OpenAI and Azure put in 429 messages ("Please try again in 6.5s", "Please retry
//! after 7 seconds").

use std::time::{Duration, SystemTime};

use http::HeaderMap;

/// The wait the headers ask for, relative to `now` for the HTTP-date form.
///
/// Returns `None` when no header is present or none parses. A date in the past is a zero
/// wait.
#[must_use]
pub fn from_headers(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(ms) = header_str(headers, name).and_then(parse_non_negative_f64) {
            return Some(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    let value = header_str(headers, "retry-after")?;
    if let Some(seconds) = parse_non_negative_f64(value) {
        return Some(Duration::from_secs_f64(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The wait a provider's error message suggests, such as OpenAI's "Please try again in
/// 6.384s" or "in 20ms", or Azure's "Please retry after 7 seconds".
#[must_use]
pub fn from_message(message: &str) -> Option<Duration> {
    let lower = message.to_ascii_lowercase();
    for marker in ["try again in ", "retry after ", "retry in "] {
        let Some(start) = lower.find(marker) else {
            continue;
        };
        let rest = &lower[start + marker.len()..];
        if let Some(wait) = parse_go_duration(rest) {
            return Some(wait);
        }
    }
    None
}

/// Reads a duration such as `6.384s`, `20ms`, `1m30s` or `7 seconds` from the start of `text`.
fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut rest = text;
    let mut total = 0.0_f64;
    let mut matched = false;
    loop {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            break;
        }
        let Some(value) = parse_non_negative_f64(rest[..number_len].trim_end_matches('.')) else {
            break;
        };
        let after = rest[number_len..].trim_start();
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let scale = match &after[..unit_len] {
            "ms" | "millisecond" | "milliseconds" => 0.001,
            "s" | "sec" | "secs" | "second" | "seconds" | "" => 1.0,
            "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
            "h" | "hour" | "hours" => 3600.0,
            _ => break,
        };
        total += value * scale;
        matched = true;
        rest = &after[unit_len..];
        if unit_len == 0 || !rest.starts_with(|c: char| c.is_ascii_digit()) {
            break;
        }
    }
    matched.then(|| Duration::from_secs_f64(total.min(1.0e9)))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

fn parse_non_negative_f64(text: &str) -> Option<f64> {
    // Only plain decimal numbers: `inf`, `NaN` and exponents are not wait times.
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let value: f64 = text.parse().ok()?;
    // Cap absurd values so `Duration::from_secs_f64` cannot panic; the balancer caps lower.
    (value.is_finite() && value >= 0.0).then_some(value.min(1.0e9))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn seconds() {
        let now = SystemTime::now();
        assert_eq!(
            from_headers(&headers(&[("retry-after", "7")]), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            from_headers(&headers(&[("retry-after", "1.5")]), now),
            Some(Duration::from_millis(1500))
        );
    }

    #[test]
    fn http_date() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        let map = headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:30 GMT")]);
        assert_eq!(from_headers(&map, now), Some(Duration::from_secs(30)));
        let past = headers(&[("retry-after", "Wed, 21 Oct 2015 07:27:00 GMT")]);
        assert_eq!(from_headers(&past, now), Some(Duration::ZERO));
    }

    #[test]
    fn milliseconds_win_over_seconds() {
        let now = SystemTime::now();
        let map = headers(&[("retry-after", "7"), ("retry-after-ms", "6500")]);
        assert_eq!(from_headers(&map, now), Some(Duration::from_millis(6500)));
        let azure = headers(&[("x-ms-retry-after-ms", "250")]);
        assert_eq!(from_headers(&azure, now), Some(Duration::from_millis(250)));
    }

    #[test]
    fn garbage_is_none() {
        let now = SystemTime::now();
        for value in ["", "soon", "-3", "inf", "NaN", "1e3"] {
            assert_eq!(
                from_headers(&headers(&[("retry-after", value)]), now),
                None,
                "{value:?}"
            );
        }
        assert_eq!(from_headers(&HeaderMap::new(), now), None);
    }

    #[test]
    fn message_hints() {
        assert_eq!(
            from_message("Rate limit reached for gpt-4o. Please try again in 6.384s. Visit"),
            Some(Duration::from_secs_f64(6.384))
        );
        assert_eq!(
            from_message("Please try again in 20ms."),
            Some(Duration::from_millis(20))
        );
        assert_eq!(
            from_message("have exceeded token rate limit. Please retry after 7 seconds."),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            from_message("Please try again in 1m30s"),
            Some(Duration::from_secs(90))
        );
        assert_eq!(from_message("You exceeded your current quota"), None);
    }
}
