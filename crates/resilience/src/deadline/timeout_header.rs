//! The two wire forms of a caller's time budget: gRPC's `grpc-timeout` header, and a plain
//! millisecond header for the REST edge.

use std::time::Duration;

/// The gRPC header carrying the caller's remaining time.
pub const GRPC_TIMEOUT_HEADER: &str = "grpc-timeout";

/// The header a REST caller may set to bound its request, in milliseconds.
pub const HTTP_TIMEOUT_HEADER: &str = "x-request-timeout-ms";

/// A header value that is not a valid timeout; it says what a valid one looks like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timeout: expected {expected}")]
pub struct InvalidTimeout {
    expected: &'static str,
}

const INVALID: InvalidTimeout = InvalidTimeout {
    expected: "1 to 8 digits and a unit (H, M, S, m, u or n), such as 100m",
};
const INVALID_HTTP: InvalidTimeout = InvalidTimeout {
    expected: "a whole number of milliseconds, such as 250",
};

/// Parses a `grpc-timeout` value: 1 to 8 ASCII digits and a unit, `H` (hours), `M` (minutes),
/// `S` (seconds), `m` (milliseconds), `u` (microseconds) or `n` (nanoseconds).
///
/// ```
/// use std::time::Duration;
/// use resilience::deadline::parse_grpc_timeout;
///
/// assert_eq!(parse_grpc_timeout("100m"), Ok(Duration::from_millis(100)));
/// assert!(parse_grpc_timeout("123456789S").is_err()); // nine digits
/// ```
pub fn parse_grpc_timeout(value: &str) -> Result<Duration, InvalidTimeout> {
    let (digits, unit) = value
        .split_at_checked(value.len().wrapping_sub(1))
        .ok_or(INVALID)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(INVALID);
    }
    let amount: u64 = digits.parse().map_err(|_| INVALID)?;
    Ok(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return Err(INVALID),
    })
}

/// Formats `timeout` as a `grpc-timeout` value in the finest unit that fits in 8 digits.
///
/// Rounds down, so the server's deadline is never later than the client's: the server gives
/// up first and says so, rather than working on for a caller that has left.
pub fn format_grpc_timeout(timeout: Duration) -> String {
    const MAX: u128 = 99_999_999;
    let nanos = timeout.as_nanos();
    let units: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    for (size, unit) in units {
        if nanos / size <= MAX {
            return format!("{}{unit}", nanos / size);
        }
    }
    format!("{MAX}H")
}

/// Parses an [`HTTP_TIMEOUT_HEADER`] value: a whole number of milliseconds.
pub fn parse_http_timeout(value: &str) -> Result<Duration, InvalidTimeout> {
    let millis: u64 = value.trim().parse().map_err(|_| INVALID_HTTP)?;
    Ok(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        let cases = [
            ("1H", Duration::from_secs(3600)),
            ("2M", Duration::from_secs(120)),
            ("2S", Duration::from_secs(2)),
            ("100m", Duration::from_millis(100)),
            ("7u", Duration::from_micros(7)),
            ("99999999n", Duration::from_nanos(99_999_999)),
            ("0m", Duration::ZERO),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_grpc_timeout(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn rejects_malformed_values() {
        for text in [
            "",
            "m",
            "100",
            "100x",
            "123456789m",
            "-1m",
            "1.5S",
            " 1S",
            "1é",
        ] {
            assert_eq!(parse_grpc_timeout(text), Err(INVALID), "{text:?}");
        }
    }

    #[test]
    fn formats_in_the_finest_unit_that_fits_and_round_trips() {
        assert_eq!(format_grpc_timeout(Duration::from_nanos(1_500)), "1500n");
        assert_eq!(format_grpc_timeout(Duration::from_millis(250)), "250000u");
        assert_eq!(format_grpc_timeout(Duration::from_secs(30)), "30000000u");
        assert_eq!(format_grpc_timeout(Duration::from_secs(300)), "300000m");
        assert_eq!(
            format_grpc_timeout(Duration::from_secs(86_400 * 365)),
            "31536000S"
        );
        assert_eq!(
            format_grpc_timeout(Duration::from_secs(86_400 * 365 * 4)),
            "2102400M"
        );
        for millis in [1, 99, 1_000, 123_456, 86_400_000] {
            let timeout = Duration::from_millis(millis);
            let parsed = parse_grpc_timeout(&format_grpc_timeout(timeout)).expect("valid");
            assert_eq!(parsed, timeout);
        }
    }

    #[test]
    fn http_header_is_milliseconds() {
        assert_eq!(parse_http_timeout("1500"), Ok(Duration::from_millis(1500)));
        assert!(parse_http_timeout("1.5s").is_err());
    }
}
