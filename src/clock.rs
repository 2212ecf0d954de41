//! Wall-clock time as ddb-pitr writes it: RFC 3339 with milliseconds, in UTC (`2026-11-24T10:30:00.000Z`),
//! in checkpoints, reports and the control table; and milliseconds since the Unix epoch for leases.

use std::time::{SystemTime, UNIX_EPOCH};

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
