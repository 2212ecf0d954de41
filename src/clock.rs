//! Wall-clock time as ddb-pitr writes it: RFC 3339 with milliseconds, in UTC (`2026-11-24T10:30:00.000Z`),
//! in checkpoints, reports and the control table; and milliseconds since the Unix epoch for leases.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, in RFC 3339 with milliseconds.
pub fn now() -> String {
    rfc3339(SystemTime::now())
}

/// `t` in RFC 3339 with milliseconds, UTC.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Milliseconds since the Unix epoch (0 before it).
pub fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// An RFC 3339 time as a user types it: `2026-11-24T10:30:00Z`, with or without fractions of a second, in UTC
/// (`Z`) or with an offset (`+01:00`, `-05:00`).
pub fn parse_time(s: &str) -> Result<SystemTime, String> {
    let s = s.trim();
    let bad = || {
        format!(
            "{s:?} is not an RFC 3339 time such as 2026-11-24T10:30:00Z or 2026-11-24T11:30:00+01:00"
        )
    };
    // The offset is whatever follows the seconds (and their fraction): `Z`, or `+HH:MM` / `-HH:MM`.
    let t = s.find('T').ok_or_else(bad)?;
    let (local, offset) = match s[t..].find(['+', '-']) {
        Some(i) => s.split_at(t + i),
        None => match s.strip_suffix(['Z', 'z']) {
            Some(local) => (local, "Z"),
            None => return Err(bad()),
        },
    };
    let base = humantime::parse_rfc3339(&format!("{local}Z")).map_err(|_| bad())?;
    if offset == "Z" {
        return Ok(base);
    }
    let (sign, hm) = offset.split_at(1);
    let (h, m) = hm.split_once(':').ok_or_else(bad)?;
    let (h, m): (u64, u64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 || hm.len() != 5 {
        return Err(bad());
    }
    let shift = Duration::from_secs(h * 3600 + m * 60);
    // 11:30+01:00 is 10:30Z: an offset ahead of UTC is subtracted.
    Ok(if sign == "+" {
        base - shift
    } else {
        base + shift
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_utc_or_with_an_offset() {
        let want = humantime::parse_rfc3339("2026-01-14T10:35:00Z").unwrap();
        for s in [
            "2026-01-14T10:35:00Z",
            "2026-01-14T10:35:00.000Z",
            " 2026-01-14T11:35:00+01:00",
            "2026-01-14T05:35:00-05:00",
            "2026-01-14T10:35:00+00:00",
        ] {
            assert_eq!(parse_time(s), Ok(want), "{s}");
        }
        assert_eq!(
            rfc3339(parse_time("2026-01-14T10:35:00.622Z").unwrap()),
            "2026-01-14T10:35:00.622Z"
        );
        for s in [
            "2026-01-14",
            "2026-01-14T10:35:00",
            "10:35",
            "2026-01-14T10:35:00+1",
            "latest",
        ] {
            let e = parse_time(s).unwrap_err();
            assert!(e.contains("is not an RFC 3339 time"), "{s}: {e}");
        }
    }
}
