//! The request headers that decide what part of an object a GET returns: `If-Match` and `Range`.

use std::ops::Range;

/// Whether an `If-Match` value lets the request go on for an object whose ETag is `etag`: it lists the
/// ETag (or `*`), comma-separated.
pub fn if_match(header: &str, etag: &str) -> bool {
    let etag = etag.trim_matches('"');
    header
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_matches('"') == etag)
}

/// One `Range: bytes=…` of the three forms S3 accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=first-last`, both inclusive.
    Closed { first: u64, last: u64 },
    /// `bytes=first-`: to the end.
    From { first: u64 },
    /// `bytes=-n`: the last `n` bytes.
    Suffix { len: u64 },
}

impl ByteRange {
    /// Parses a `Range` value, or `None` for anything else (several ranges, other units, `last` before
    /// `first`): S3, like RFC 9110, then ignores the header and answers the whole object.
    pub fn parse(header: &str) -> Option<ByteRange> {
        let spec = header.trim().strip_prefix("bytes=")?;
        let (first, last) = spec.split_once('-')?;
        let number = |s: &str| -> Option<u64> {
            let s = s.trim();
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        };
        match (first.trim().is_empty(), last.trim().is_empty()) {
            (true, false) => Some(ByteRange::Suffix { len: number(last)? }),
            (false, true) => Some(ByteRange::From {
                first: number(first)?,
            }),
            (false, false) => {
                let (first, last) = (number(first)?, number(last)?);
                (first <= last).then_some(ByteRange::Closed { first, last })
            }
            (true, true) => None,
        }
    }

    /// The byte offsets this range selects in an object of `size` bytes, or `None` when it selects
    /// nothing (416 `InvalidRange`). A range reaching past the end is cut at the end.
    pub fn resolve(self, size: u64) -> Option<Range<u64>> {
        let range = match self {
            ByteRange::Closed { first, last } => first..last.saturating_add(1).min(size),
            ByteRange::From { first } => first..size,
            ByteRange::Suffix { len } => size.saturating_sub(len)..size,
        };
        (range.start < range.end).then_some(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_as_s3_answers_them() {
        let r = |h: &str, size: u64| ByteRange::parse(h).map(|r| r.resolve(size));
        assert_eq!(r("bytes=0-9", 100), Some(Some(0..10)));
        assert_eq!(r("bytes=90-200", 100), Some(Some(90..100)));
        assert_eq!(r("bytes=50-", 100), Some(Some(50..100)));
        assert_eq!(r("bytes=-10", 100), Some(Some(90..100)));
        assert_eq!(r("bytes=-500", 100), Some(Some(0..100)));
        // Unsatisfiable: 416.
        assert_eq!(r("bytes=100-200", 100), Some(None));
        assert_eq!(r("bytes=0-0", 0), Some(None));
        assert_eq!(r("bytes=-0", 100), Some(None));
        // Not understood: the header is ignored.
        for ignored in [
            "bytes=5-1",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=-",
            "bytes=a-b",
            "bytes=+1-2",
        ] {
            assert_eq!(ByteRange::parse(ignored), None, "{ignored}");
        }
    }

    #[test]
    fn if_match_takes_a_list_or_a_star() {
        let etag = "\"1-2-3\"";
        assert!(if_match("\"1-2-3\"", etag));
        assert!(if_match("1-2-3", etag));
        assert!(if_match("\"x\", \"1-2-3\"", etag));
        assert!(if_match("*", etag));
        assert!(!if_match("\"1-2-4\"", etag));
    }
}
