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

use std::borrow::Cow;
use std::fmt;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize as _;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use smallvec::SmallVec;

use crate::export::manifest::ExportType;

use super::key::{KeySchema, KeyValue, KeyValues};
use super::number::validate_number;
use super::{Item, WriteOp};
use crate::error::truncate;

mod fast;

/// Decodes one line (without its newline). The error is a human-readable reason; the caller adds the
/// export, file, line and offset.
pub fn decode_line(line: &[u8], export_type: ExportType) -> Result<WriteOp, String> {
    let record = read_record(line, ItemSeed)?;
    Ok(match select(record, export_type)? {
        (Kind::Put, item, _) => WriteOp::Put(item),
        (Kind::Delete, keys, _) => WriteOp::Delete(keys),
    })
}

/// One line's write, as the export's own JSON, which is already DynamoDB's wire format.
#[derive(Debug, Clone, Copy)]
pub struct Scanned<'a> {
    pub delete: bool,
    /// The item (a put) or `Keys` (a delete), exactly as the line has it.
    pub image: &'a str,
    /// [`KeySchema::hash_values`] of the write's key.
    pub key_hash: u64,
}

/// What [`decode_line`] and [`KeySchema::check`] do together, without building the item: the line is
/// checked against the same rules, with the same messages, and the write is returned as a slice of the
/// line, to be sent as it is ([`crate::item::wire`]).
pub fn scan_line<'a>(
    line: &'a [u8],
    export_type: ExportType,
    key: &KeySchema,
) -> Result<Scanned<'a>, String> {
    // The usual FULL line, `{"Item":…}` with no spaces, is checked in one pass over the item. Anything
    // else, and any line that fails that pass (the error is worded from the whole line), is first split
    // into its fields.
    if export_type == ExportType::Full
        && let Some(item) = line
            .strip_prefix(br#"{"Item":"#)
            .and_then(|rest| rest.strip_suffix(b"}"))
        // The check of the whole line's UTF-8, vectorised: a visible share of the line's cost with std's.
        && let Ok(item) = simdutf8::basic::from_utf8(item)
    {
        // Compact items with plain strings, byte by byte; then serde_json's visitor.
        if let Some((values, _)) = fast::scan_item(item, key)
            && key.check_values(&values, None).is_ok()
        {
            return Ok(Scanned {
                delete: false,
                image: item,
                key_hash: key.hash_values(&values),
            });
        }
        if let Ok(scanned) = scan_image(line, Kind::Put, item, None, key) {
            return Ok(scanned);
        }
    }
    let (kind, image, keys) = select(read_record(line, RawSeed)?, export_type)?;
    scan_image(line, kind, image.get(), keys.map(RawValue::get), key)
}

/// Key values and the number of attributes of a checked item.
#[cfg(test)]
pub(crate) type Checked<'a> = (KeyValues<'a>, usize);

/// The fast check of a FULL item, and the serde check of the same item, for tests that the first accepts
/// nothing the second refuses.
#[cfg(test)]
pub(crate) fn both_checks<'a>(
    item: &'a str,
    key: &KeySchema,
) -> (Option<Checked<'a>>, Result<Checked<'a>, String>) {
    let fast = fast::scan_item(item, key);
    let serde = check_json(item.as_bytes(), item, Some(key)).map(|f| (f.values, f.count));
    (fast, serde)
}

/// Checks the item or `Keys` (and the `Keys` of an incremental put), slices of `line`, and the key.
fn scan_image<'a>(
    line: &[u8],
    kind: Kind,
    image: &'a str,
    keys: Option<&str>,
    key: &KeySchema,
) -> Result<Scanned<'a>, String> {
    // `Keys` of an incremental put is checked too, as `decode_line` builds it.
    if let Some(keys) = keys {
        check_json(line, keys, None)?;
    }
    let Found { values, count } = check_json(line, image, Some(key))?;
    let delete = matches!(kind, Kind::Delete);
    key.check_values(&values, delete.then_some(count))?;
    Ok(Scanned {
        delete,
        image,
        key_hash: key.hash_values(&values),
    })
}

/// Checks an object, a slice of `line`, and picks out the key's values when given the key.
fn check_json<'j>(
    line: &[u8],
    json: &'j str,
    key: Option<&KeySchema>,
) -> Result<Found<'j>, String> {
    let column = json.as_ptr() as usize - line.as_ptr() as usize;
    let mut de = serde_json::Deserializer::from_str(json);
    let found = de
        .deserialize_map(ImageCheck { key })
        .map_err(|e| describe_json_error(e, column))?;
    de.end().map_err(|e| describe_json_error(e, column))?;
    Ok(found)
}

/// Parses an item, `Keys` or image object on its own.
pub fn parse_item(json: &str) -> Result<Item, String> {
    let mut de = serde_json::Deserializer::from_str(json);
    let item = de
        .deserialize_map(ItemSeed)
        .map_err(|e| describe_json_error(e, 0))?;
    de.end().map_err(|e| describe_json_error(e, 0))?;
    Ok(item)
}

fn read_record<'de, S>(line: &'de [u8], seed: S) -> Result<Record<S::Value>, String>
where
    S: DeserializeSeed<'de> + Copy,
{
    let mut de = serde_json::Deserializer::from_slice(line);
    let record = de
        .deserialize_map(RecordVisitor(seed))
        .map_err(|e| describe_json_error(e, 0))?;
    de.end().map_err(|e| describe_json_error(e, 0))?;
    Ok(record)
}

enum Kind {
    Put,
    Delete,
}

/// The write a record stands for: its kind, the item or `Keys`, and the `Keys` of an incremental put.
fn select<T>(record: Record<T>, export_type: ExportType) -> Result<(Kind, T, Option<T>), String> {
    match export_type {
        ExportType::Full => match record {
            Record {
                item: Some(item),
                keys: None,
                new_image: None,
            } => Ok((Kind::Put, item, None)),
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
                keys,
                ..
            } => Ok((Kind::Put, image, keys)),
            Record {
                keys: Some(keys), ..
            } => Ok((Kind::Delete, keys, None)),
        },
    }
}

/// serde_json's message without "at line 1 column N" (a line is one line), with the column counted from
/// the start of the line when the JSON was a part of it starting `offset` bytes in.
fn describe_json_error(e: serde_json::Error, offset: usize) -> String {
    let msg = e.to_string();
    match msg.rsplit_once(" at line 1 column ") {
        Some((what, col)) => match col.parse::<usize>() {
            Ok(col) => format!("{what} (column {})", col + offset),
            Err(_) => format!("{what} (column {col})"),
        },
        None => msg,
    }
}

struct Record<T> {
    item: Option<T>,
    keys: Option<T>,
    new_image: Option<T>,
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

/// An export record whose `Item`, `Keys` and `NewImage` are read with the seed; other fields are skipped.
struct RecordVisitor<S>(S);

impl<'de, S: DeserializeSeed<'de> + Copy> Visitor<'de> for RecordVisitor<S> {
    type Value = Record<S::Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an export record object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
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
            *slot = Some(map.next_value_seed(self.0)?);
        }
        Ok(record)
    }
}

/// A value kept as the JSON text it is, borrowed from the line.
#[derive(Clone, Copy)]
struct RawSeed;

impl<'de> DeserializeSeed<'de> for RawSeed {
    type Value = &'de RawValue;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<&'de RawValue, D::Error> {
        <&RawValue>::deserialize(d)
    }
}

/// Checks an item, image or `Keys` object by [`ItemSeed`]'s rules without building it, and picks out the
/// values of the key attributes when given the key.
struct ImageCheck<'k> {
    key: Option<&'k KeySchema>,
}

struct Found<'de> {
    values: KeyValues<'de>,
    count: usize,
}

impl<'de> Visitor<'de> for ImageCheck<'_> {
    type Value = Found<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of attribute names to DynamoDB attribute values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Found<'de>, A::Error> {
        let mut found = Found {
            values: [None, None],
            count: 0,
        };
        let mut names = Names::default();
        while let Some(Name(name)) = map.next_key()? {
            match self
                .key
                .and_then(|k| k.position(&name))
                .and_then(|i| found.values.get_mut(i))
            {
                Some(slot) => *slot = Some(map.next_value_seed(KeyValueSeed)?),
                None => map.next_value_seed(CheckValue)?,
            }
            names.push(name);
        }
        found.count = names.check()?;
        Ok(found)
    }
}

/// An attribute name, borrowed from the line unless it has escapes.
struct Name<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(TextVisitor).map(Name)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// The names of one map, to refuse a name given twice as [`ItemSeed`] does; on the stack for most maps.
#[derive(Default)]
struct Names<'de>(SmallVec<[Cow<'de, str>; 16]>);

impl<'de> Names<'de> {
    fn push(&mut self, name: Cow<'de, str>) {
        self.0.push(name);
    }

    /// The number of names, or the error for a repeated one.
    fn check<E: de::Error>(mut self) -> Result<usize, E> {
        self.distinct().ok_or_else(duplicate_name)
    }

    /// The number of names if none is repeated.
    fn distinct(&mut self) -> Option<usize> {
        let n = self.0.len();
        let repeated = if n <= 16 {
            (1..n).any(|i| self.0[..i].contains(&self.0[i]))
        } else {
            self.0.sort_unstable();
            self.0.windows(2).any(|w| w[0] == w[1])
        };
        (!repeated).then_some(n)
    }
}

fn duplicate_name<E: de::Error>() -> E {
    E::custom("an attribute name appears twice in one map")
}

/// A key attribute's value, checked by [`ValueSeed`]'s rules.
struct KeyValueSeed;

impl<'de> DeserializeSeed<'de> for KeyValueSeed {
    type Value = KeyValue<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for KeyValueSeed {
    type Value = KeyValue<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        ValueSeed.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let tag = first_tag(&mut map)?;
        let value = match tag {
            TypeTag::S => KeyValue::S(map.next_value_seed(TextSeed)?),
            TypeTag::N => {
                let n = map.next_value_seed(TextSeed)?;
                validate_number(&n).map_err(de::Error::custom)?;
                KeyValue::N(n)
            }
            TypeTag::B => KeyValue::B(Cow::Owned(map.next_value_seed(BinarySeed)?.into_inner())),
            other => {
                check_tagged(other, &mut map)?;
                KeyValue::Other(other.name())
            }
        };
        no_second_tag(&mut map)?;
        Ok(value)
    }
}

#[derive(Clone, Copy)]
struct TextSeed;

impl<'de> DeserializeSeed<'de> for TextSeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(TextVisitor)
    }
}

/// Any attribute value, checked by [`ValueSeed`]'s rules and not built.
#[derive(Clone, Copy)]
struct CheckValue;

impl<'de> DeserializeSeed<'de> for CheckValue {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for CheckValue {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        ValueSeed.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let tag = first_tag(&mut map)?;
        check_tagged(tag, &mut map)?;
        no_second_tag(&mut map)
    }
}

/// An `M` value, checked and not built.
#[derive(Clone, Copy)]
struct CheckMap;

impl<'de> DeserializeSeed<'de> for CheckMap {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for CheckMap {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        ItemSeed.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut names = Names::default();
        while let Some(Name(name)) = map.next_key()? {
            map.next_value_seed(CheckValue)?;
            names.push(name);
        }
        names.check().map(drop)
    }
}

/// The value after the type descriptor `tag`, checked and not built.
fn check_tagged<'de, A: MapAccess<'de>>(tag: TypeTag, map: &mut A) -> Result<(), A::Error> {
    match tag {
        TypeTag::S => map.next_value_seed(Leaf::Text).map(drop),
        TypeTag::N => map.next_value_seed(Leaf::Number).map(drop),
        TypeTag::B => map.next_value_seed(Leaf::Binary).map(drop),
        TypeTag::Bool => map.next_value::<bool>().map(drop),
        TypeTag::Null => null_is_true(map.next_value::<bool>()?),
        TypeTag::Ss => non_empty(
            map.next_value_seed(CountSeq(Leaf::Text, "a sequence"))?,
            "SS",
        ),
        TypeTag::Ns => non_empty(
            map.next_value_seed(CountSeq(Leaf::Number, "a sequence"))?,
            "NS",
        ),
        TypeTag::Bs => non_empty(map.next_value_seed(CountSeq(Leaf::Binary, "a list"))?, "BS"),
        TypeTag::L => map
            .next_value_seed(CountSeq(CheckValue, "a list"))
            .map(drop),
        TypeTag::M => map.next_value_seed(CheckMap),
    }
}

/// A string, a number in a string, or base64 in a string: checked and not kept.
#[derive(Clone, Copy)]
enum Leaf {
    Text,
    Number,
    Binary,
}

impl<'de> DeserializeSeed<'de> for Leaf {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for Leaf {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Leaf::Text | Leaf::Number => f.write_str("a string"),
            Leaf::Binary => BinarySeed.expecting(f),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        match self {
            Leaf::Text => Ok(()),
            Leaf::Number => validate_number(v).map_err(E::custom),
            Leaf::Binary => check_base64(v),
        }
    }
}

/// A list whose elements are checked with the seed; its length.
#[derive(Clone, Copy)]
struct CountSeq<S>(S, &'static str);

impl<'de, S: DeserializeSeed<'de, Value = ()> + Copy> DeserializeSeed<'de> for CountSeq<S> {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, S: DeserializeSeed<'de, Value = ()> + Copy> Visitor<'de> for CountSeq<S> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.1)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut n = 0;
        while seq.next_element_seed(self.0)?.is_some() {
            n += 1;
        }
        Ok(n)
    }
}

fn first_tag<'de, A: MapAccess<'de>>(map: &mut A) -> Result<TypeTag, A::Error> {
    map.next_key::<TypeTag>()?
        .ok_or_else(|| de::Error::custom("empty attribute value {} has no type descriptor"))
}

fn no_second_tag<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    if map.next_key::<IgnoredAny>()?.is_some() {
        return Err(de::Error::custom(
            "an attribute value has more than one type descriptor",
        ));
    }
    Ok(())
}

fn null_is_true<E: de::Error>(v: bool) -> Result<(), E> {
    if v {
        Ok(())
    } else {
        Err(E::custom(
            "{\"NULL\": false} is not a valid value; NULL must be true",
        ))
    }
}

/// A map of attribute name → attribute value: an item, `Keys`, an image, or an `M` value.
#[derive(Clone, Copy)]
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
            if item.insert(name, value).is_some() {
                return Err(duplicate_name());
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

impl TypeTag {
    fn from_name(name: &str) -> Option<TypeTag> {
        Some(match name {
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
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            TypeTag::S => "S",
            TypeTag::N => "N",
            TypeTag::B => "B",
            TypeTag::Bool => "BOOL",
            TypeTag::Null => "NULL",
            TypeTag::Ss => "SS",
            TypeTag::Ns => "NS",
            TypeTag::Bs => "BS",
            TypeTag::L => "L",
            TypeTag::M => "M",
        }
    }
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
                TypeTag::from_name(v).ok_or_else(|| {
                    E::custom(format!(
                        "unknown type descriptor {v:?}; expected one of S, N, B, BOOL, NULL, SS, NS, BS, L, M"
                    ))
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
        let tag = first_tag(&mut map)?;
        let value = match tag {
            TypeTag::S => AttributeValue::S(map.next_value()?),
            TypeTag::N => AttributeValue::N(number(map.next_value()?)?),
            TypeTag::B => AttributeValue::B(map.next_value_seed(BinarySeed)?),
            TypeTag::Bool => AttributeValue::Bool(map.next_value()?),
            TypeTag::Null => {
                null_is_true(map.next_value::<bool>()?)?;
                AttributeValue::Null(true)
            }
            TypeTag::Ss => {
                let ss = map.next_value::<Vec<String>>()?;
                non_empty(ss.len(), "SS")?;
                AttributeValue::Ss(ss)
            }
            TypeTag::Ns => {
                let ns = map.next_value::<Vec<String>>()?;
                non_empty(ns.len(), "NS")?;
                AttributeValue::Ns(ns.into_iter().map(number).collect::<Result<_, _>>()?)
            }
            TypeTag::Bs => {
                let bs = map.next_value_seed(SeqSeed(BinarySeed))?;
                non_empty(bs.len(), "BS")?;
                AttributeValue::Bs(bs)
            }
            TypeTag::L => AttributeValue::L(map.next_value_seed(SeqSeed(ValueSeed))?),
            TypeTag::M => AttributeValue::M(map.next_value_seed(ItemSeed)?),
        };
        no_second_tag(&mut map)?;
        Ok(value)
    }
}

fn non_empty<E: de::Error>(len: usize, tag: &str) -> Result<(), E> {
    if len == 0 {
        Err(E::custom(format!(
            "empty {tag} set; DynamoDB sets must have at least one element"
        )))
    } else {
        Ok(())
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
        BASE64
            .decode(v)
            .map(Blob::new)
            .map_err(|e| bad_base64(v, e))
    }
}

fn bad_base64<E: de::Error>(v: &str, e: base64::DecodeError) -> E {
    E::custom(format!(
        "bad base64 in binary value {:?}: {e}",
        truncate(v, 40)
    ))
}

/// [`BinarySeed`]'s check without keeping the bytes.
fn check_base64<E: de::Error>(v: &str) -> Result<(), E> {
    if base64_ok(v) {
        Ok(())
    } else {
        // The same message as BinarySeed's.
        Err(bad_base64(
            v,
            BASE64.decode(v).expect_err("base64_ok refused it"),
        ))
    }
}

/// Whether [`BinarySeed`] accepts `v`; decodes into a reused buffer (always large enough, so it fails only
/// where decoding would).
fn base64_ok(v: &str) -> bool {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with_borrow_mut(|buf| {
        buf.resize(base64::decoded_len_estimate(v.len()), 0);
        BASE64.decode_slice(v, buf).is_ok()
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::key::KeyType;

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

    /// `decode_line` followed by the key check: what `scan_line` must agree with.
    fn decode_and_check(line: &[u8], ty: ExportType, key: &KeySchema) -> Result<WriteOp, String> {
        let op = decode_line(line, ty)?;
        key.check(&op)?;
        Ok(op)
    }

    #[test]
    fn scan_line_refuses_what_decode_line_refuses_with_the_same_words() {
        use ExportType::{Full, Incremental};
        let pk = KeySchema::of(&[("pk", KeyType::S)]);
        let pk_sk = KeySchema::of(&[("pk", KeyType::S), ("sk", KeyType::N)]);
        let bin = KeySchema::of(&[("pk", KeyType::B)]);
        let cases: &[(&str, ExportType, &KeySchema)] = &[
            (r#"{"Item":{"pk":{"S":"1"}}"#, Full, &pk),
            (r#"{"Item":{"pk":{"X":"1"}}}"#, Full, &pk),
            (r#"{"Item":{"pk":{"S":"1"},"b":{"B":"@@@"}}}"#, Full, &pk),
            (r#"{"Item":{"pk":{"S":"1"},"n":{"N":"1x"}}}"#, Full, &pk),
            (r#"{"Item":{"pk":{"S":"1"},"n":{"N":1}}}"#, Full, &pk),
            (r#"{"Item":{"pk":{"S":"1"},"n":{"N":"1e200"}}}"#, Full, &pk),
            (r#"{"Item":{"pk":{"S":"1","N":"1"}}}"#, Full, &pk),
            (
                r#"{"Item":{"pk":{"S":"1"},"x":{"S":"1","N":"1"}}}"#,
                Full,
                &pk,
            ),
            (r#"{"Item":{"pk":{}}}"#, Full, &pk),
            (r#"{"Item":{"pk":{"S":"1"},"s":{"SS":[]}}}"#, Full, &pk),
            (r#"{"Item":{"pk":{"S":"1"},"s":{"NS":[]}}}"#, Full, &pk),
            (r#"{"Item":{"pk":{"S":"1"},"s":{"BS":[]}}}"#, Full, &pk),
            (r#"{"Item":{"pk":{"S":"1"},"s":{"SS":"a"}}}"#, Full, &pk),
            (r#"{"Item":{"pk":{"S":"1"},"s":{"SS":["a",1]}}}"#, Full, &pk),
            (
                r#"{"Item":{"pk":{"S":"1"},"s":{"NS":["1","x"]}}}"#,
                Full,
                &pk,
            ),
            (
                r#"{"Item":{"pk":{"S":"1"},"s":{"BS":["AA==","!"]}}}"#,
                Full,
                &pk,
            ),
            (
                r#"{"Item":{"pk":{"S":"1"},"l":{"L":[{"S":"a"},{"Q":1}]}}}"#,
                Full,
                &pk,
            ),
            (r#"{"Item":{"pk":{"S":"1"},"l":{"L":{}}}}"#, Full, &pk),
            (
                r#"{"Item":{"pk":{"S":"1"},"m":{"M":{"a":{"N":"?"}}}}}"#,
                Full,
                &pk,
            ),
            (r#"{"Item":{"pk":{"S":"1"},"m":{"M":[]}}}"#, Full, &pk),
            (r#"{"Item":{"pk":{"S":"1"},"z":{"NULL":false}}}"#, Full, &pk),
            (r#"{"Item":{"pk":{"S":"1"},"z":{"BOOL":"yes"}}}"#, Full, &pk),
            (r#"{"Item":{"pk":{"S":"1"},"z":{"S":null}}}"#, Full, &pk),
            (r#"{"Item":{"pk":{"S":"1"}}} x"#, Full, &pk),
            (r#"{"Keys":{"pk":{"S":"1"}}}"#, Full, &pk),
            (r#"{"Item":{},"Item":{}}"#, Full, &pk),
            (
                r#"{"Item":{"pk":{"S":"1"}},"Item":{"pk":{"S":"1"}}}"#,
                Full,
                &pk,
            ),
            (
                r#"{"Item":{"pk":{"S":"1"}},"Keys":{"pk":{"S":"1"}}}"#,
                Full,
                &pk,
            ),
            (r#"{"Item":{"pk":{"S":"1"}}}}"#, Full, &pk),
            (r#"{"Item":[]}"#, Full, &pk),
            (r#"{"Item":"x"}"#, Full, &pk),
            (r#"[]"#, Full, &pk),
            (r#"{"Item":{"pk":{"S":"1"},"pk":{"S":"2"}}}"#, Full, &pk),
            (
                r#"{"Item":{"pk":{"S":"1"},"p\u006b":{"S":"2"}}}"#,
                Full,
                &pk,
            ),
            (
                r#"{"Item":{"pk":{"S":"1"},"m":{"M":{"a":{"S":"1"},"a":{"S":"1"}}}}}"#,
                Full,
                &pk,
            ),
            (r#"{"Item":{"x":{"S":"1"}}}"#, Full, &pk),
            (r#"{"Item":{"pk":{"N":"1"}}}"#, Full, &pk),
            (r#"{"Item":{"pk":{"S":""}}}"#, Full, &pk),
            (r#"{"Item":{"pk":{"M":{}}}}"#, Full, &pk),
            (r#"{"Item":{"pk":{"S":"1"},"sk":{"S":"1"}}}"#, Full, &pk_sk),
            (
                r#"{"Item":{"pk":{"S":"1"},"sk":{"N":"1..2"}}}"#,
                Full,
                &pk_sk,
            ),
            (r#"{"Item":{"pk":{"B":""}}}"#, Full, &bin),
            (r#"{"Item":{"pk":{"B":"AA="}}}"#, Full, &bin),
            (r#"{"NewImage":{}}"#, Incremental, &pk),
            (r#"{"Item":{"pk":{"S":"1"}}}"#, Incremental, &pk),
            (
                r#"{"Keys":{"pk":{"S":"1"},"x":{"S":"2"}}}"#,
                Incremental,
                &pk,
            ),
            (
                r#"{"Keys":{"pk":{"S":"1"},"x":{"S":"2","N":"1"}},"NewImage":{"pk":{"S":"1"}}}"#,
                Incremental,
                &pk,
            ),
            (
                r#"{"Keys":{"pk":{"S":"1"}},"NewImage":{"x":{"S":"1"}}}"#,
                Incremental,
                &pk,
            ),
            (
                r#"{"Keys":{"pk":{"S":"1"}},"NewImage":{"pk":{"S":"1"}},"NewImage":{}}"#,
                Incremental,
                &pk,
            ),
        ];
        for (line, ty, key) in cases {
            let want = decode_and_check(line.as_bytes(), *ty, key).unwrap_err();
            let got = scan_line(line.as_bytes(), *ty, key)
                .map(|s| s.image)
                .unwrap_err();
            // The column may differ by where the check runs (inside the value or after it).
            let words = |m: &str| m.split(" (column ").next().unwrap().to_owned();
            assert_eq!(words(&got), words(&want), "{line}");
            assert_eq!(
                got.contains(" (column "),
                want.contains(" (column "),
                "{got} / {want}"
            );
        }
        // Columns count from the start of the line, not of the item.
        let line = br#"{"Item":{"pk":{"S":"1"},"x":{"X":"1"}}}"#;
        assert_eq!(
            scan_line(line, Full, &pk).map(|s| s.image).unwrap_err(),
            decode_and_check(line, Full, &pk).unwrap_err()
        );
        let not_utf8 = b"{\"Item\":{\"pk\":{\"S\":\"\xff\"}}}";
        assert_eq!(
            scan_line(not_utf8, Full, &pk).map(|s| s.image).unwrap_err(),
            decode_and_check(not_utf8, Full, &pk).unwrap_err()
        );
    }

    #[test]
    fn scan_line_accepts_what_decode_line_accepts() {
        use ExportType::{Full, Incremental};
        let pk = KeySchema::of(&[("pk", KeyType::S)]);
        let n_key = KeySchema::of(&[("id", KeyType::N), ("b", KeyType::B)]);
        let cases: &[(&str, ExportType, &KeySchema)] = &[
            (r#"{"Item":{"pk":{"S":"1"}},"Extra":{"x":1}}"#, Full, &pk),
            (r#"{"Item":{"pk":{"S":"1"}} }"#, Full, &pk),
            (
                r#" { "Item" : { "pk" : { "S" : "a\"b" } , "x\u00e9" : {"L":[]} } } "#,
                Full,
                &pk,
            ),
            (
                r#"{"Item":{"p\u006b":{"S":"\u00e9"},"m":{"M":{"a":{"NS":["1","2.50"]}}}}}"#,
                Full,
                &pk,
            ),
            (
                r#"{"Item":{"id":{"N":"1.0"},"b":{"B":"AAE="},"z":{"NULL":true}}}"#,
                Full,
                &n_key,
            ),
            (
                r#"{"Item":{"id":{"N":"10E-1"},"b":{"B":"AAE="},"bs":{"BS":["AA=="]}}}"#,
                Full,
                &n_key,
            ),
            (
                r#"{"Metadata":{"WriteTimestampMicros":{"N":"1"}},"Keys":{"pk":{"S":"k"}},"OldImage":{"junk":[1,2]}}"#,
                Incremental,
                &pk,
            ),
            (
                r#"{"Keys":{"pk":{"S":"k"}},"NewImage":{"pk":{"S":"k"},"v":{"BOOL":false}}}"#,
                Incremental,
                &pk,
            ),
        ];
        for (line, ty, key) in cases {
            let want = decode_and_check(line.as_bytes(), *ty, key).unwrap();
            let got = scan_line(line.as_bytes(), *ty, key).unwrap();
            assert_eq!(got.key_hash, key.key_hash(want.item()), "{line}");
            let image = parse_item(got.image).unwrap();
            match want {
                WriteOp::Put(item) => assert!(!got.delete && image == item, "{line}"),
                WriteOp::Delete(keys) => assert!(got.delete && image == keys, "{line}"),
            }
        }
        // Numerically equal keys are one key.
        let one = |n: &str| {
            let line = format!(r#"{{"Item":{{"id":{{"N":"{n}"}},"b":{{"B":"AAE="}}}}}}"#);
            scan_line(line.as_bytes(), Full, &n_key).unwrap().key_hash
        };
        assert_eq!(one("1"), one("1.00"));
        assert_eq!(one("1"), one("0.1E1"));
        assert_ne!(one("1"), one("2"));
    }
}
