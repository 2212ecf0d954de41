//! One line of a data file → one write.
//!
//! - FULL export: `{"Item": {...}}` becomes a put of the item.
//! - INCREMENTAL export: a record with `NewImage` becomes a put of that image (it is the whole item after
//!   the change, for inserts and updates alike); a record without `NewImage` becomes a delete of `Keys`.
//!   `OldImage` and `Metadata` are skipped without being built.
//!
//! The decoder deserialises DynamoDB JSON straight into the SDK's `AttributeValue`, with no intermediate
//! `serde_json::Value`, and validates what DynamoDB would reject anyway (type descriptors, base64, number
//! syntax, precision and range, empty sets), so that bad data is reported with its line and offset instead
//! of surfacing later as an opaque ValidationException for a whole batch.

use std::collections::HashMap;
use std::fmt;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::manifest::ExportType;

pub type Item = HashMap<String, AttributeValue>;

#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    Put(Item),
    Delete(Item),
}

impl WriteOp {
    /// The attributes that identify the item: the whole item for a put, `Keys` for a delete.
    pub fn item(&self) -> &Item {
        match self {
            WriteOp::Put(i) | WriteOp::Delete(i) => i,
        }
    }
}

/// Decodes one line (without its newline). The error is a human-readable reason; the caller adds the
/// export, file, line and offset.
pub fn decode_line(line: &[u8], export_type: ExportType) -> Result<WriteOp, String> {
    let mut de = serde_json::Deserializer::from_slice(line);
    let record = de
        .deserialize_map(RecordVisitor)
        .map_err(describe_json_error)?;
    de.end().map_err(describe_json_error)?;
    match export_type {
        ExportType::Full => match record {
            Record {
                item: Some(item),
                keys: None,
                new_image: None,
            } => Ok(WriteOp::Put(item)),
            _ => Err("a FULL export line must hold exactly one \"Item\" object".into()),
        },
        ExportType::Incremental => match record {
            Record { item: Some(_), .. } => Err(
                "an INCREMENTAL export line has an \"Item\" field; is this a FULL export?".into(),
            ),
            Record { keys: None, .. } => {
                Err("an INCREMENTAL export line has no \"Keys\" object".into())
            }
            Record {
                new_image: Some(image),
                ..
            } => Ok(WriteOp::Put(image)),
            Record {
                keys: Some(keys), ..
            } => Ok(WriteOp::Delete(keys)),
        },
    }
}

fn describe_json_error(e: serde_json::Error) -> String {
    // serde_json reports "… at line 1 column N"; the line is always 1 here, so keep only the column.
    let msg = e.to_string();
    match msg.rsplit_once(" at line 1 column ") {
        Some((what, col)) => format!("{what} (column {col})"),
        None => msg,
    }
}

struct Record {
    item: Option<Item>,
    keys: Option<Item>,
    new_image: Option<Item>,
}

#[derive(serde::Deserialize)]
#[serde(field_identifier)]
enum RecordField {
    Item,
    Keys,
    NewImage,
    #[serde(other)]
    Other,
}

struct RecordVisitor;

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = Record;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an export record object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record, A::Error> {
        let mut record = Record {
            item: None,
            keys: None,
            new_image: None,
        };
        while let Some(field) = map.next_key::<RecordField>()? {
            let (slot, name) = match field {
                RecordField::Item => (&mut record.item, "Item"),
                RecordField::Keys => (&mut record.keys, "Keys"),
                RecordField::NewImage => (&mut record.new_image, "NewImage"),
                RecordField::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            if slot.is_some() {
                return Err(de::Error::custom(format!("duplicate field \"{name}\"")));
            }
            *slot = Some(map.next_value_seed(ItemSeed)?);
        }
        Ok(record)
    }
}

/// A map of attribute name → attribute value: an item, `Keys`, an image, or an `M` value.
struct ItemSeed;

impl<'de> DeserializeSeed<'de> for ItemSeed {
    type Value = Item;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Item, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ItemSeed {
    type Value = Item;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of attribute names to DynamoDB attribute values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
        let mut item = Item::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(name) = map.next_key::<String>()? {
            let value = map.next_value_seed(ValueSeed)?;
            if let Some(dup) = item.insert(name, value) {
                drop(dup);
                return Err(de::Error::custom(
                    "an attribute name appears twice in one map",
                ));
            }
        }
        Ok(item)
    }
}

#[derive(Clone, Copy)]
enum TypeTag {
    S,
    N,
    B,
    Bool,
    Null,
    Ss,
    Ns,
    Bs,
    L,
    M,
}

impl<'de> serde::Deserialize<'de> for TypeTag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TypeTag;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a DynamoDB type descriptor")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TypeTag, E> {
                Ok(match v {
                    "S" => TypeTag::S,
                    "N" => TypeTag::N,
                    "B" => TypeTag::B,
                    "BOOL" => TypeTag::Bool,
                    "NULL" => TypeTag::Null,
                    "SS" => TypeTag::Ss,
                    "NS" => TypeTag::Ns,
                    "BS" => TypeTag::Bs,
                    "L" => TypeTag::L,
                    "M" => TypeTag::M,
                    other => {
                        return Err(E::custom(format!(
                            "unknown type descriptor {other:?}; expected one of S, N, B, BOOL, NULL, SS, NS, BS, L, M"
                        )));
                    }
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

/// One attribute value: an object with exactly one type descriptor.
#[derive(Clone, Copy)]
struct ValueSeed;

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = AttributeValue;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<AttributeValue, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = AttributeValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a DynamoDB attribute value such as {\"S\": \"text\"}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AttributeValue, A::Error> {
        let tag = map
            .next_key::<TypeTag>()?
            .ok_or_else(|| de::Error::custom("empty attribute value {} has no type descriptor"))?;
        let value = match tag {
            TypeTag::S => AttributeValue::S(map.next_value()?),
            TypeTag::N => AttributeValue::N(number(map.next_value()?)?),
            TypeTag::B => AttributeValue::B(map.next_value_seed(BinarySeed)?),
            TypeTag::Bool => AttributeValue::Bool(map.next_value()?),
            TypeTag::Null => {
                if !map.next_value::<bool>()? {
                    return Err(de::Error::custom(
                        "{\"NULL\": false} is not a valid value; NULL must be true",
                    ));
                }
                AttributeValue::Null(true)
            }
            TypeTag::Ss => AttributeValue::Ss(non_empty(map.next_value::<Vec<String>>()?, "SS")?),
            TypeTag::Ns => {
                let ns = non_empty(map.next_value::<Vec<String>>()?, "NS")?;
                AttributeValue::Ns(ns.into_iter().map(number).collect::<Result<_, _>>()?)
            }
            TypeTag::Bs => {
                AttributeValue::Bs(non_empty(map.next_value_seed(SeqSeed(BinarySeed))?, "BS")?)
            }
            TypeTag::L => AttributeValue::L(map.next_value_seed(SeqSeed(ValueSeed))?),
            TypeTag::M => AttributeValue::M(map.next_value_seed(ItemSeed)?),
        };
        if map.next_key::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom(
                "an attribute value has more than one type descriptor",
            ));
        }
        Ok(value)
    }
}

fn non_empty<T, E: de::Error>(v: Vec<T>, tag: &str) -> Result<Vec<T>, E> {
    if v.is_empty() {
        Err(E::custom(format!(
            "empty {tag} set; DynamoDB sets must have at least one element"
        )))
    } else {
        Ok(v)
    }
}

fn number<E: de::Error>(n: String) -> Result<String, E> {
    validate_number(&n).map_err(E::custom)?;
    Ok(n)
}

/// A base64 string (RFC 4648 standard alphabet with padding, as DynamoDB JSON uses) → bytes.
#[derive(Clone, Copy)]
struct BinarySeed;

impl<'de> DeserializeSeed<'de> for BinarySeed {
    type Value = Blob;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Blob, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for BinarySeed {
    type Value = Blob;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a base64 string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Blob, E> {
        BASE64.decode(v).map(Blob::new).map_err(|e| {
            E::custom(format!(
                "bad base64 in binary value {:?}: {e}",
                truncate(v, 40)
            ))
        })
    }
}

struct SeqSeed<S>(S);

impl<'de, S: DeserializeSeed<'de> + Copy> DeserializeSeed<'de> for SeqSeed<S> {
    type Value = Vec<S::Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, S: DeserializeSeed<'de> + Copy> Visitor<'de> for SeqSeed<S> {
    type Value = Vec<S::Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(4));
        while let Some(v) = seq.next_element_seed(self.0)? {
            out.push(v);
        }
        Ok(out)
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The same text for numerically equal numbers (`1`, `1.0`, `10E-1`, `-0` and `0`...): DynamoDB compares
/// number keys by value. Assumes [`validate_number`] passed.
pub fn normalize_number(s: &str) -> String {
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i64>().unwrap_or(0)),
        None => (s, 0),
    };
    let negative = mantissa.starts_with('-');
    let unsigned = mantissa.trim_start_matches(['-', '+']);
    let (int_part, frac_part) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits: String = int_part.chars().chain(frac_part.chars()).collect();
    let Some(first) = digits.find(|c| c != '0') else {
        return "0".into();
    };
    let significant = digits[first..].trim_end_matches('0');
    let magnitude = int_part.len() as i64 - first as i64 - 1 + exp;
    format!(
        "{}{significant}e{magnitude}",
        if negative { "-" } else { "" }
    )
}

/// DynamoDB numbers: up to 38 significant digits; magnitude between 1E-130 and
/// 9.9999999999999999999999999999999999999E+125, or zero.
pub fn validate_number(s: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("invalid number {:?}: {why}", truncate(s, 60)));
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let unsigned = mantissa.strip_prefix(['-', '+']).unwrap_or(mantissa);
    let (int_part, frac_part) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return bad("not a decimal number");
    }
    let exp: i64 = match exponent {
        None => 0,
        Some(e) => {
            let digits = e.strip_prefix(['-', '+']).unwrap_or(e);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return bad("malformed exponent");
            }
            // Anything longer than 6 digits is far outside the range unless the mantissa is zero.
            e.parse::<i64>()
                .unwrap_or(if e.starts_with('-') {
                    -1_000_000
                } else {
                    1_000_000
                })
                .clamp(-1_000_000, 1_000_000)
        }
    };
    let digits = || int_part.bytes().chain(frac_part.bytes());
    let Some(first) = digits().position(|b| b != b'0') else {
        return Ok(()); // zero
    };
    let trailing_zeros = digits().rev().take_while(|&b| b == b'0').count();
    let significant = int_part.len() + frac_part.len() - trailing_zeros - first;
    if significant > 38 {
        return bad(&format!(
            "{significant} significant digits; DynamoDB allows at most 38"
        ));
    }
    let magnitude = int_part.len() as i64 - first as i64 - 1 + exp;
    if magnitude > 125 {
        return bad("larger than DynamoDB's maximum 9.9999999999999999999999999999999999999E+125");
    }
    if magnitude < -130 {
        return bad("closer to zero than DynamoDB's minimum 1E-130");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    #[test]
    fn full_line_is_a_put() {
        let op = decode_line(
            br#"{"Item":{"pk":{"S":"1"},"n":{"N":"12"},"b":{"B":"MDAwMA=="}}}"#,
            ExportType::Full,
        )
        .unwrap();
        let WriteOp::Put(item) = op else {
            panic!("not a put")
        };
        assert_eq!(item["pk"], s("1"));
        assert_eq!(item["n"], AttributeValue::N("12".into()));
        assert_eq!(item["b"], AttributeValue::B(Blob::new(b"0000".to_vec())));
    }

    #[test]
    fn incremental_records() {
        let insert = br#"{"Metadata":{"WriteTimestampMicros":{"N":"1"}},"Keys":{"pk":{"S":"2"}},"NewImage":{"pk":{"S":"2"},"x":{"S":"new"}}}"#;
        let update = br#"{"Keys":{"pk":{"S":"2"}},"OldImage":{"pk":{"S":"2"},"bogus":{"Q":1}},"NewImage":{"pk":{"S":"2"}}}"#;
        let delete = br#"{"Metadata":{},"Keys":{"pk":{"S":"3"}},"OldImage":{"pk":{"S":"3"}}}"#;
        assert!(
            matches!(decode_line(insert, ExportType::Incremental), Ok(WriteOp::Put(i)) if i["x"] == s("new"))
        );
        // OldImage is skipped without being interpreted, so a type it holds is never checked.
        assert!(
            matches!(decode_line(update, ExportType::Incremental), Ok(WriteOp::Put(i)) if i.len() == 1)
        );
        assert!(
            matches!(decode_line(delete, ExportType::Incremental), Ok(WriteOp::Delete(k)) if k["pk"] == s("3"))
        );
        let keys_only = br#"{"Keys":{"pk":{"S":"3"}}}"#;
        assert!(matches!(
            decode_line(keys_only, ExportType::Incremental),
            Ok(WriteOp::Delete(_))
        ));
    }

    #[test]
    fn every_type_decodes() {
        let line = r#"{"Item":{"s":{"S":"ü🎉\"\n"},"n":{"N":"-1.5E-3"},"b":{"B":""},"t":{"BOOL":true},"z":{"NULL":true},
            "ss":{"SS":["a","b"]},"ns":{"NS":["1","2"]},"bs":{"BS":["AA==","AQ=="]},
            "l":{"L":[{"S":"x"},{"L":[]},{"M":{}}]},"m":{"M":{"k":{"N":"0"}}}}}"#
            .replace('\n', " ");
        let WriteOp::Put(item) = decode_line(line.as_bytes(), ExportType::Full).unwrap() else {
            panic!()
        };
        assert_eq!(item["s"], s("ü🎉\"\n"));
        assert_eq!(
            item["bs"],
            AttributeValue::Bs(vec![Blob::new(vec![0]), Blob::new(vec![1])])
        );
        assert_eq!(item["l"].as_l().unwrap().len(), 3);
        assert_eq!(
            item["m"].as_m().unwrap()["k"],
            AttributeValue::N("0".into())
        );
        assert_eq!(item.len(), 10);
    }

    #[test]
    fn bad_input_is_described() {
        let cases: &[(&[u8], &str)] = &[
            (br#"{"Item":{"pk":{"S":"1"}}"#, "EOF while parsing"),
            (
                br#"{"Item":{"pk":{"X":"1"}}}"#,
                "unknown type descriptor \"X\"",
            ),
            (br#"{"Item":{"pk":{"B":"@@@"}}}"#, "bad base64"),
            (br#"{"Item":{"pk":{"N":"1x"}}}"#, "invalid number"),
            (
                br#"{"Item":{"pk":{"S":"1","N":"1"}}}"#,
                "more than one type descriptor",
            ),
            (br#"{"Item":{"pk":{}}}"#, "no type descriptor"),
            (br#"{"Item":{"pk":{"SS":[]}}}"#, "empty SS set"),
            (br#"{"Item":{"pk":{"NULL":false}}}"#, "NULL must be true"),
            (br#"{"Item":{"pk":{"S":"1"}}} x"#, "trailing characters"),
            (br#"{"Keys":{"pk":{"S":"1"}}}"#, "exactly one \"Item\""),
            (br#"{"Item":{},"Item":{}}"#, "duplicate field"),
        ];
        for (line, want) in cases {
            let err = decode_line(line, ExportType::Full).unwrap_err();
            assert!(
                err.contains(want),
                "{}: got {err:?}, want {want:?}",
                String::from_utf8_lossy(line)
            );
        }
        let err = decode_line(br#"{"NewImage":{}}"#, ExportType::Incremental).unwrap_err();
        assert!(err.contains("no \"Keys\""), "{err}");
        let err = decode_line(br#"{"Item":{"pk":{"X":"1"}}}"#, ExportType::Full).unwrap_err();
        assert!(err.contains("(column "), "{err}");
    }

    #[test]
    fn equal_numbers_normalize_equal() {
        let n = normalize_number;
        assert_eq!(n("1"), n("1.0"));
        assert_eq!(n("1"), n("10E-1"));
        assert_eq!(n("1"), n("0.1e1"));
        assert_eq!(n("-0"), n("0.000"));
        assert_eq!(n("-12.50"), n("-1.25E+1"));
        assert_ne!(n("1"), n("-1"));
        assert_ne!(n("1"), n("10"));
        assert_ne!(n("12"), n("1.2"));
    }

    #[test]
    fn number_limits() {
        for ok in [
            "0",
            "-0",
            "0.000",
            "12",
            "-12.50",
            "1E-130",
            "-1E-130",
            "9.9999999999999999999999999999999999999E+125",
            "-9.9999999999999999999999999999999999999E+125",
            "12345678901234567890123456789012345678",
            "0.00000000000000000000000000000000000000000000000012345678901234567890123456789012345678",
            "100000000000000000000000000000000000000000000000000",
            "0E+999999999",
            ".5",
            "5.",
        ] {
            assert!(
                validate_number(ok).is_ok(),
                "{ok} should be valid: {:?}",
                validate_number(ok)
            );
        }
        for bad in [
            "",
            "-",
            ".",
            "1e",
            "1e+",
            "--1",
            "1.2.3",
            "0x10",
            "NaN",
            "Infinity",
            "1 ",
            "1E-131",
            "10E+125",
            "1E+126",
            "123456789012345678901234567890123456789",
            "1.00000000000000000000000000000000000001",
        ] {
            assert!(validate_number(bad).is_err(), "{bad} should be invalid");
        }
    }
}
