//! BatchWriteItem requests built from the export's own JSON.
//!
//! An export line's item is already in DynamoDB's JSON wire format (`{"pk":{"S":"a"},"n":{"N":"1"}}`), so a
//! write is sent as the bytes of the line it came from, wrapped in `{"PutRequest":{"Item":…}}` or
//! `{"DeleteRequest":{"Key":…}}`: no `AttributeValue` tree is built and serialised again for every item.
//! [`crate::item::decode::scan_line`] has checked the line by the same rules as the decoder that builds the tree.
//!
//! [`crate::write::dynamo::DynamoWriter`] sends the body with the SDK client's endpoint, credentials, signer and
//! HTTP connector; unprocessed items come back as the JSON DynamoDB sent. [`RawWrite::put`] writes an item
//! built in code (the control table's) in this form.

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{Bytes, BytesMut};

use super::decode::parse_item;
use super::{Item, WriteOp};

const PUT: &[u8] = br#"{"PutRequest":{"Item":"#;
const DELETE: &[u8] = br#"{"DeleteRequest":{"Key":"#;
const END: &[u8] = b"}}";

/// One element of a BatchWriteItem request's list, as JSON. Usually a slice of a buffer that holds a whole
/// batch ([`crate::engine::batcher::Batcher`]), so a line costs no allocation of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawWrite {
    json: Bytes,
    delete: bool,
}

impl RawWrite {
    /// A put of `item` or, with `delete`, a delete of the key `item`; `item` is a JSON object of DynamoDB
    /// attribute values that has been checked ([`crate::item::decode::scan_line`]).
    pub fn new(delete: bool, item: &str) -> Self {
        let mut json = BytesMut::with_capacity(encoded_len(item));
        encode(&mut json, delete, item);
        RawWrite {
            json: json.freeze(),
            delete,
        }
    }

    /// `json` must hold exactly what [`encode`] wrote.
    pub(crate) fn from_encoded(json: Bytes, delete: bool) -> Self {
        RawWrite { json, delete }
    }

    /// A put of an item built in code.
    pub fn put(item: &Item) -> Result<Self, String> {
        let mut json = String::new();
        write_item(&mut json, item)?;
        Ok(RawWrite::new(false, &json))
    }

    pub fn is_delete(&self) -> bool {
        self.delete
    }

    /// The whole element, `{"PutRequest":{"Item":…}}` or `{"DeleteRequest":{"Key":…}}`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.json
    }

    /// The item or key object.
    pub fn item_json(&self) -> &str {
        let prefix = if self.delete { DELETE } else { PUT };
        std::str::from_utf8(&self.json[prefix.len()..self.json.len() - END.len()])
            .expect("built from a str")
    }

    /// The write as a decoded item: what the SDK would have been given.
    pub fn to_op(&self) -> WriteOp {
        let item = parse_item(self.item_json()).expect("a RawWrite holds checked JSON");
        if self.delete {
            WriteOp::Delete(item)
        } else {
            WriteOp::Put(item)
        }
    }
}

/// At least the length of [`encode`]'s output.
pub fn encoded_len(item: &str) -> usize {
    PUT.len().max(DELETE.len()) + item.len() + END.len()
}

/// Appends the request element for a put of `item`, or with `delete` a delete of the key `item`.
pub fn encode(out: &mut BytesMut, delete: bool, item: &str) {
    out.extend_from_slice(if delete { DELETE } else { PUT });
    out.extend_from_slice(item.as_bytes());
    out.extend_from_slice(END);
}

/// The body of a BatchWriteItem call writing `writes` to `table`, asking for consumed capacity by index.
pub fn batch_body(table: &str, writes: &[RawWrite]) -> Vec<u8> {
    const HEAD: &[u8] = br#"{"RequestItems":{"#;
    const TAIL: &[u8] = br#"]},"ReturnConsumedCapacity":"INDEXES"}"#;
    let len = writes.iter().map(|w| w.json.len() + 1).sum::<usize>();
    // The table name's quotes and escapes, and `:[`, fit in a few bytes more than its length.
    let mut body = Vec::with_capacity(HEAD.len() + table.len() + 8 + len + TAIL.len());
    body.extend_from_slice(HEAD);
    serde_json::to_writer(&mut body, table).expect("writing to a Vec");
    body.extend_from_slice(b":[");
    for (i, w) in writes.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&w.json);
    }
    body.extend_from_slice(TAIL);
    body
}

fn write_item(out: &mut String, item: &Item) -> Result<(), String> {
    out.push('{');
    for (i, (name, value)) in item.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, name);
        out.push(':');
        write_value(out, value)?;
    }
    out.push('}');
    Ok(())
}

fn write_value(out: &mut String, value: &AttributeValue) -> Result<(), String> {
    let strings = |out: &mut String, tag: &str, items: &mut dyn Iterator<Item = String>| {
        out.push_str("{\"");
        out.push_str(tag);
        out.push_str("\":[");
        for (i, s) in items.enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_str(out, &s);
        }
        out.push_str("]}");
    };
    match value {
        AttributeValue::S(s) => tagged_str(out, "S", s),
        AttributeValue::N(n) => tagged_str(out, "N", n),
        AttributeValue::B(b) => tagged_str(out, "B", &BASE64.encode(b.as_ref())),
        AttributeValue::Bool(b) => out.push_str(if *b {
            r#"{"BOOL":true}"#
        } else {
            r#"{"BOOL":false}"#
        }),
        AttributeValue::Null(_) => out.push_str(r#"{"NULL":true}"#),
        AttributeValue::Ss(v) => strings(out, "SS", &mut v.iter().cloned()),
        AttributeValue::Ns(v) => strings(out, "NS", &mut v.iter().cloned()),
        AttributeValue::Bs(v) => {
            strings(out, "BS", &mut v.iter().map(|b| BASE64.encode(b.as_ref())))
        }
        AttributeValue::L(v) => {
            out.push_str(r#"{"L":["#);
            for (i, e) in v.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, e)?;
            }
            out.push_str("]}");
        }
        AttributeValue::M(m) => {
            out.push_str(r#"{"M":"#);
            write_item(out, m)?;
            out.push('}');
        }
        other => {
            return Err(format!(
                "DynamoDB returned a value this client cannot send back: {other:?}"
            ));
        }
    }
    Ok(())
}

fn tagged_str(out: &mut String, tag: &str, s: &str) {
    out.push_str("{\"");
    out.push_str(tag);
    out.push_str("\":");
    write_str(out, s);
    out.push('}');
}

fn write_str(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).expect("a str serialises"));
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::path::Path;

    use flate2::read::MultiGzDecoder;

    use ddb_pitr_synth::{self as synth, SynthSpec};

    use super::*;
    use crate::export::manifest::ExportType;
    use crate::item::decode::{both_checks, decode_line, scan_line};
    use crate::item::key::{KeySchema, KeyType};

    fn pk_sk() -> KeySchema {
        KeySchema::of(&[("pk", KeyType::S), ("sk", KeyType::S)])
    }

    /// Every line of every data file under `dir`, with its export type.
    fn lines_under(dir: &Path) -> Vec<(ExportType, String)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "gz") {
                    let reader =
                        BufReader::new(MultiGzDecoder::new(std::fs::File::open(&path).unwrap()));
                    for line in reader.lines() {
                        let line = line.unwrap();
                        let ty = if line.starts_with(r#"{"Item""#) {
                            ExportType::Full
                        } else {
                            ExportType::Incremental
                        };
                        out.push((ty, line));
                    }
                }
            }
        }
        out
    }

    fn corpus() -> Vec<(ExportType, String)> {
        let dir = tempfile::tempdir().unwrap();
        synth::generate(dir.path(), &SynthSpec::default()).unwrap();
        let mut lines = lines_under(dir.path());
        let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/aws-real-export");
        let real_lines = lines_under(&real);
        assert!(
            real_lines.len() > 10,
            "the real export fixture is missing: {}",
            real.display()
        );
        lines.extend(real_lines);
        assert!(lines.iter().any(|(t, _)| *t == ExportType::Incremental));
        lines
    }

    #[test]
    fn scanned_lines_are_the_decoded_writes() {
        let key = pk_sk();
        let corpus = corpus();
        let mut deletes = 0;
        for (ty, line) in &corpus {
            let op = decode_line(line.as_bytes(), *ty).unwrap();
            key.check(&op).unwrap();
            let scanned = scan_line(line.as_bytes(), *ty, &key).unwrap();
            assert_eq!(scanned.key_hash, key.key_hash(op.item()), "{line}");
            let raw = RawWrite::new(scanned.delete, scanned.image);
            assert_eq!(raw.to_op(), op, "{line}");
            // An item built in code is written as the same JSON.
            if !raw.is_delete() {
                assert_eq!(RawWrite::put(op.item()).unwrap().to_op(), op, "{line}");
            }
            deletes += usize::from(raw.is_delete());
        }
        assert!(deletes > 0, "the corpus has no deletes");
    }

    /// The byte-level check of FULL items accepts only what the serde check accepts, with the same key
    /// values and attribute count: on every FULL line of the corpus, and on thousands of mutations of them.
    #[test]
    fn the_fast_item_check_accepts_nothing_the_serde_check_refuses() {
        let key = pk_sk();
        let items: Vec<String> = corpus()
            .into_iter()
            .filter(|(ty, _)| *ty == ExportType::Full)
            .map(|(_, line)| line[r#"{"Item":"#.len()..line.len() - 1].to_owned())
            .collect();
        let agree = |item: &str| {
            let (fast, serde) = both_checks(item, &key);
            if let Some(fast) = fast {
                assert_eq!(Ok(fast), serde, "{item}");
                true
            } else {
                false
            }
        };
        let accepted = items.iter().filter(|item| agree(item)).count();
        // The generator writes hostile strings (\u escapes) into some items: those take the serde path.
        assert!(
            accepted * 10 > items.len() * 7,
            "{accepted} of {}",
            items.len()
        );

        fastrand::seed(11);
        let alphabet = br#"{}[]":,\ 0123456789.eE+-aAnNsSbBlLmMtrufU/"#;
        let (mut mutated_accepted, mut tries) = (0, 0);
        for item in items.iter().filter(|i| i.len() < 4000) {
            for _ in 0..20 {
                let mut bytes = item.as_bytes().to_vec();
                let at = fastrand::usize(..bytes.len());
                match fastrand::u8(..3) {
                    0 => bytes[at] = alphabet[fastrand::usize(..alphabet.len())],
                    1 => drop(bytes.remove(at)),
                    _ => bytes.insert(at, alphabet[fastrand::usize(..alphabet.len())]),
                }
                let Ok(text) = std::str::from_utf8(&bytes) else {
                    continue;
                };
                tries += 1;
                mutated_accepted += usize::from(agree(text));
            }
        }
        // Some mutations stay valid (inside strings): the comparison above ran on them.
        assert!(
            tries > 1000 && mutated_accepted > 0,
            "{mutated_accepted} of {tries}"
        );
    }
}
