//! `Content-Encoding: aws-chunked` request bodies. The SDK sends a PutObject body it does not hold in
//! memory (a file, a stream) this way, with its checksum as a trailer, so storing the raw body would store
//! the framing too.
//!
//! The encoding: chunks of `HEX-SIZE[;chunk-signature=SIG]\r\n` + data + `\r\n`, a last chunk of size 0,
//! then trailer lines (`x-amz-checksum-crc32:…`) and an empty line. Signatures and trailers are dropped
//! unchecked, as everywhere in this endpoint.

/// Whether a `Content-Encoding` value includes `aws-chunked` (it may be listed with others).
pub fn is_aws_chunked(content_encoding: &str) -> bool {
    content_encoding
        .split(',')
        .any(|coding| coding.trim().eq_ignore_ascii_case("aws-chunked"))
}

/// The payload of an aws-chunked body, or why the body is not one.
pub fn decode(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut payload = Vec::with_capacity(body.len());
    loop {
        let (header, rest) = split_line(body).ok_or("a chunk header does not end with CRLF")?;
        let size_hex = header.split(|&b| b == b';').next().unwrap_or_default();
        let size = std::str::from_utf8(size_hex)
            .ok()
            .and_then(|hex| usize::from_str_radix(hex.trim(), 16).ok())
            .ok_or_else(|| {
                format!(
                    "chunk size {:?} is not hexadecimal",
                    String::from_utf8_lossy(size_hex)
                )
            })?;
        if size == 0 {
            return Ok(payload);
        }
        let data = rest
            .get(..size)
            .ok_or_else(|| format!("a chunk of {size} bytes is cut short"))?;
        payload.extend_from_slice(data);
        body = rest[size..]
            .strip_prefix(b"\r\n")
            .ok_or("chunk data is not followed by CRLF")?;
    }
}

/// The bytes before the first CRLF, and those after it.
fn split_line(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = bytes.windows(2).position(|w| w == b"\r\n")?;
    Some((&bytes[..end], &bytes[end + 2..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_unsigned_and_signed_chunks_and_drops_trailers() {
        let unsigned = b"5\r\nhello\r\n3\r\n!!!\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n";
        assert_eq!(decode(unsigned).unwrap(), b"hello!!!");
        let signed = b"4;chunk-signature=abcd\r\nwxyz\r\n0;chunk-signature=ef01\r\n\r\n";
        assert_eq!(decode(signed).unwrap(), b"wxyz");
        for bad in [&b"5\r\nhel"[..], b"zz\r\n", b"2\r\nhiX\r\n0\r\n\r\n", b"2"] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(is_aws_chunked("gzip, aws-chunked") && !is_aws_chunked("gzip"));
    }
}
