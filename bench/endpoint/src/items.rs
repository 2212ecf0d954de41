//! Parsing and validating BatchWriteItem requests without building the items.
//!
//! An item is read once with a streaming visitor that sums its DynamoDB size and picks out its key
//! attributes; nothing but key strings with JSON escapes is allocated per item. The body is read once into
//! write requests whose item (or key) stays a borrowed `&RawValue`, so `UnprocessedItems` and `--store` hand
//! back the item's bytes as the client sent them, in a `{"PutRequest":{"Item":…}}` of their own.
//!
//! DynamoDB's item size rules ("Item sizes and formats" in the Developer Guide): the size of an item is the
//! sum of its attribute names' UTF-8 lengths and its values' sizes, where a string is its UTF-8 length, a
//! number is 1 byte per two significant digits plus 1 (leading and trailing zeros trimmed), a binary is its
//! raw (decoded) length, a boolean or null is 1 byte, a set is the sum of its elements, and a list or map is
//! 3 bytes plus, for each element, its size plus 1 byte (plus the name's length, for a map).

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use md5::{Digest, Md5};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::config::{ScalarType, TableSpec};
use crate::protocol::ApiError;

/// DynamoDB's maximum item size, 400 KB, names and values included.
pub const MAX_ITEM_BYTES: u64 = 400 * 1024;
/// BatchWriteItem takes at most 25 put or delete requests in all.
pub const MAX_BATCH_REQUESTS: usize = 25;
/// DynamoDB supports up to 32 levels of nested lists and maps.
pub const MAX_NESTING: u32 = 32;

/// The write units one item costs: its size in KB, rounded up (at least 1).
pub fn write_units(size: u64) -> u64 {
    size.div_ceil(1024).max(1)
}

/// A JSON string, borrowed from the body unless it contains escapes.
#[derive(Debug)]
pub struct Str<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// The top level of a BatchWriteItem request.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchWriteInput<'a> {
    #[serde(borrow)]
    pub request_items: Option<RequestItems<'a>>,
    #[serde(borrow)]
    pub return_consumed_capacity: Option<Str<'a>>,
}

/// `RequestItems`: table name → write requests, in the order sent.
pub struct RequestItems<'a>(pub Vec<(Str<'a>, Vec<WriteRequestRaw<'a>>)>);

impl<'de: 'a, 'a> Deserialize<'de> for RequestItems<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RequestItems<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of table names to lists of write requests")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(name) = map.next_key::<Str<'a>>()? {
                    let requests: Vec<WriteRequestRaw<'a>> = map.next_value()?;
                    out.push((name, requests));
                }
                Ok(RequestItems(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// One write request as sent, its item or key not read yet.
#[derive(Deserialize)]
pub struct WriteRequestRaw<'a> {
    #[serde(rename = "PutRequest", borrow)]
    put: Option<PutRaw<'a>>,
    #[serde(rename = "DeleteRequest", borrow)]
    delete: Option<DeleteRaw<'a>>,
}

#[derive(Deserialize)]
struct PutRaw<'a> {
    #[serde(rename = "Item", borrow)]
    item: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct DeleteRaw<'a> {
    #[serde(rename = "Key", borrow)]
    key: Option<&'a RawValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    Put,
    Delete,
}

/// A key attribute's value as sent.
#[derive(Debug, Clone)]
pub struct Scalar<'a> {
    pub ty: ScalarType,
    pub text: Cow<'a, str>,
}

/// The primary key of one write, in schema order.
#[derive(Debug, Clone)]
pub struct Key<'a> {
    pub hash: Scalar<'a>,
    pub range: Option<Scalar<'a>>,
}

impl Key<'_> {
    /// The key's canonical bytes: for each key attribute in schema order, its type letter, the value's
    /// length as 4 big-endian bytes, and the value: a string's UTF-8, a number's canonical form (see
    /// [`canonical_number`]: `1.50` and `15E-1` are one key, as in DynamoDB), a binary's base64 text as sent.
    pub fn feed(&self, sink: &mut impl FnMut(&[u8])) {
        for part in std::iter::once(&self.hash).chain(self.range.as_ref()) {
            let number;
            let bytes: &[u8] = match part.ty {
                ScalarType::N => {
                    number = canonical_number(&part.text);
                    number.as_bytes()
                }
                ScalarType::S | ScalarType::B => part.text.as_bytes(),
            };
            sink(part.ty.as_str().as_bytes());
            sink(&(bytes.len() as u32).to_be_bytes());
            sink(bytes);
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        self.feed(&mut |b| out.extend_from_slice(b));
        out
    }

    /// MD5 of the canonical bytes so far; finish with [`term`].
    pub fn hasher(&self) -> Md5 {
        let mut h = Md5::new();
        self.feed(&mut |b| h.update(b));
        h
    }
}

/// The digest term of a key and its last operation: MD5(canonical key bytes ‖ `P` or `D`) read as a
/// big-endian u128. The key digest of a table is the wrapping sum of the terms of every key written.
pub fn term(key_hasher: &Md5, kind: WriteKind) -> u128 {
    let mut h = key_hasher.clone();
    h.update(match kind {
        WriteKind::Put => b"P",
        WriteKind::Delete => b"D",
    });
    u128::from_be_bytes(h.finalize().into())
}

/// One validated write request.
pub struct Write<'a> {
    pub kind: WriteKind,
    pub key: Key<'a>,
    /// DynamoDB size of the item (puts); 0 for deletes.
    pub size: u64,
    /// The item (puts) or key (deletes) as sent, for `UnprocessedItems`.
    pub body: &'a RawValue,
    /// The item as sent (puts).
    pub item: Option<&'a RawValue>,
}

impl Write<'_> {
    /// The write request as JSON: `{"PutRequest":{"Item":…}}` or `{"DeleteRequest":{"Key":…}}`.
    pub fn push_request(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(match self.kind {
            WriteKind::Put => br#"{"PutRequest":{"Item":"#,
            WriteKind::Delete => br#"{"DeleteRequest":{"Key":"#,
        });
        out.extend_from_slice(self.body.get().as_bytes());
        out.extend_from_slice(b"}}");
    }

    /// Write units: ceil(size / 1 KB) for a put, 1 for a delete.
    pub fn units(&self) -> u64 {
        match self.kind {
            WriteKind::Put => write_units(self.size),
            WriteKind::Delete => 1,
        }
    }
}

/// Parses and validates one element of a table's write-request list.
pub fn parse_write<'a>(wr: &WriteRequestRaw<'a>, table: &TableSpec) -> Result<Write<'a>, ApiError> {
    match (&wr.put, &wr.delete) {
        (Some(put), None) => {
            let item = put.item.ok_or_else(|| {
                ApiError::validation(
                    "1 validation error detected: Value null at 'requestItems.1.member.putRequest.item' \
                     failed to satisfy constraint: Member must not be null",
                )
            })?;
            let info = summarize(item, table)?;
            if info.size > MAX_ITEM_BYTES {
                return Err(ApiError::validation(
                    "Item size has exceeded the maximum allowed size",
                ));
            }
            let key = put_key(info.hash, info.range, table)?;
            Ok(Write {
                kind: WriteKind::Put,
                key,
                size: info.size,
                body: item,
                item: Some(item),
            })
        }
        (None, Some(delete)) => {
            let key_raw = delete.key.ok_or_else(|| {
                ApiError::validation(
                    "1 validation error detected: Value null at 'requestItems.1.member.deleteRequest.key' \
                     failed to satisfy constraint: Member must not be null",
                )
            })?;
            let info = summarize(key_raw, table)?;
            let expected = 1 + usize::from(table.range.is_some());
            let no_match =
                || ApiError::validation("The provided key element does not match the schema");
            if info.attributes != expected {
                return Err(no_match());
            }
            let key = match (info.hash, info.range, &table.range) {
                (Some(h), r, None) if r.is_none() => Key {
                    hash: key_part(h, &table.hash.name, table.hash.ty)
                        .map_err(|_| no_match())??,
                    range: None,
                },
                (Some(h), Some(r), Some(range)) => Key {
                    hash: key_part(h, &table.hash.name, table.hash.ty)
                        .map_err(|_| no_match())??,
                    range: Some(key_part(r, &range.name, range.ty).map_err(|_| no_match())??),
                },
                _ => return Err(no_match()),
            };
            Ok(Write {
                kind: WriteKind::Delete,
                key,
                size: 0,
                body: key_raw,
                item: None,
            })
        }
        (None, None) => Err(ApiError::validation(
            "Supplied WriteRequest is empty, must contain exactly one of PutRequest or DeleteRequest",
        )),
        (Some(_), Some(_)) => Err(ApiError::validation(
            "Supplied WriteRequest has both PutRequest and DeleteRequest set, must contain exactly one",
        )),
    }
}

/// A put's key: both attributes present, of the declared type, not empty.
fn put_key<'a>(
    hash: Option<ValueInfo<'a>>,
    range: Option<ValueInfo<'a>>,
    table: &TableSpec,
) -> Result<Key<'a>, ApiError> {
    let missing = |name: &str| {
        ApiError::validation(format!(
            "One or more parameter values were invalid: Missing the key {name} in the item"
        ))
    };
    let mismatch = |name: &str, expected: ScalarType, actual: &str| {
        ApiError::validation(format!(
            "One or more parameter values were invalid: Type mismatch for key {name} expected: {} actual: {actual}",
            expected.as_str()
        ))
    };
    let h = hash.ok_or_else(|| missing(&table.hash.name))?;
    let hash = key_part(h, &table.hash.name, table.hash.ty)
        .map_err(|actual| mismatch(&table.hash.name, table.hash.ty, actual))??;
    let range = match &table.range {
        None => None,
        Some(attr) => {
            let r = range.ok_or_else(|| missing(&attr.name))?;
            Some(
                key_part(r, &attr.name, attr.ty)
                    .map_err(|actual| mismatch(&attr.name, attr.ty, actual))??,
            )
        }
    };
    Ok(Key { hash, range })
}

/// `Err(actual type)` on a type mismatch; `Ok(Err(_))` for an empty string or binary key value.
fn key_part<'a>(
    v: ValueInfo<'a>,
    name: &str,
    ty: ScalarType,
) -> Result<Result<Scalar<'a>, ApiError>, &'static str> {
    match v.scalar {
        Some(s) if s.ty == ty => {
            if s.text.is_empty() {
                let what = if ty == ScalarType::B {
                    "binary"
                } else {
                    "string"
                };
                return Ok(Err(ApiError::validation(format!(
                    "One or more parameter values are not valid. The AttributeValue for a key attribute \
                     cannot contain an empty {what} value. Key: {name}"
                ))));
            }
            Ok(Ok(s))
        }
        _ => Err(v.tag),
    }
}

/// What an item's single pass yields.
struct ItemInfo<'a> {
    size: u64,
    attributes: usize,
    hash: Option<ValueInfo<'a>>,
    range: Option<ValueInfo<'a>>,
}

/// Walks an item (or a key) once: its size and its key attributes.
fn summarize<'a>(item: &'a RawValue, table: &TableSpec) -> Result<ItemInfo<'a>, ApiError> {
    let ctx = Ctx::default();
    let mut de = serde_json::Deserializer::from_str(item.get());
    match (ItemSeed { ctx: &ctx, table }).deserialize(&mut de) {
        Ok(info) => Ok(info),
        Err(e) => Err(ctx
            .problem
            .into_inner()
            .unwrap_or_else(|| ApiError::serialization(e.to_string()))),
    }
}

/// Carries a validation problem out of the serde visitors, which can only return string errors.
#[derive(Default)]
struct Ctx {
    problem: RefCell<Option<ApiError>>,
}

impl Ctx {
    fn fail<E: de::Error>(&self, err: ApiError) -> E {
        let mut p = self.problem.borrow_mut();
        if p.is_none() {
            *p = Some(err);
        }
        E::custom("request failed validation")
    }
}

struct ItemSeed<'c> {
    ctx: &'c Ctx,
    table: &'c TableSpec,
}

impl<'de, 'c> DeserializeSeed<'de> for ItemSeed<'c> {
    type Value = ItemInfo<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, 'c> Visitor<'de> for ItemSeed<'c> {
    type Value = ItemInfo<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of attribute names to AttributeValues")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut info = ItemInfo {
            size: 0,
            attributes: 0,
            hash: None,
            range: None,
        };
        let range_name = self.table.range.as_ref().map(|r| r.name.as_str());
        while let Some(name) = map.next_key::<Str<'de>>()? {
            let name = name.0;
            let role = if *name == self.table.hash.name {
                1
            } else if Some(&*name) == range_name {
                2
            } else {
                0
            };
            let value = map.next_value_seed(ValueSeed {
                ctx: self.ctx,
                depth: 1,
                keep: role != 0,
            })?;
            info.size += name.len() as u64 + value.size;
            info.attributes += 1;
            match role {
                1 => info.hash = Some(value),
                2 => info.range = Some(value),
                _ => {}
            }
        }
        Ok(info)
    }
}

/// One AttributeValue: its size, its type tag, and its text when it is a kept scalar.
struct ValueInfo<'a> {
    size: u64,
    tag: &'static str,
    scalar: Option<Scalar<'a>>,
}

#[derive(Clone, Copy)]
struct ValueSeed<'c> {
    ctx: &'c Ctx,
    depth: u32,
    /// Keep the text of an S, N or B value (key attributes).
    keep: bool,
}

impl<'de, 'c> DeserializeSeed<'de> for ValueSeed<'c> {
    type Value = ValueInfo<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, 'c> Visitor<'de> for ValueSeed<'c> {
    type Value = ValueInfo<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an AttributeValue object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let ctx = self.ctx;
        if self.depth > MAX_NESTING {
            return Err(ctx.fail(ApiError::validation(
                "Nesting Levels have exceeded supported limits",
            )));
        }
        let mut out: Option<ValueInfo<'de>> = None;
        while let Some(tag) = map.next_key::<Str<'de>>()? {
            let tag: &'static str = match &*tag.0 {
                "S" => "S",
                "N" => "N",
                "B" => "B",
                "SS" => "SS",
                "NS" => "NS",
                "BS" => "BS",
                "M" => "M",
                "L" => "L",
                "NULL" => "NULL",
                "BOOL" => "BOOL",
                // Unknown members are ignored, as DynamoDB's deserializer does.
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            if out.is_some() {
                return Err(ctx.fail(ApiError::validation(
                    "Supplied AttributeValue has more than one datatypes set, must contain exactly one of \
                     the supported datatypes",
                )));
            }
            let scalar = |ty| ScalarSeed {
                ctx,
                ty,
                keep: self.keep,
            };
            let value = match tag {
                "S" => map.next_value_seed(scalar(ScalarType::S))?,
                "N" => map.next_value_seed(scalar(ScalarType::N))?,
                "B" => map.next_value_seed(scalar(ScalarType::B))?,
                "SS" | "NS" | "BS" => {
                    let ty = match tag {
                        "SS" => ScalarType::S,
                        "NS" => ScalarType::N,
                        _ => ScalarType::B,
                    };
                    let size = map.next_value_seed(SetSeed { ctx, ty })?;
                    ValueInfo {
                        size,
                        tag,
                        scalar: None,
                    }
                }
                "M" => ValueInfo {
                    size: map.next_value_seed(NestedSeed {
                        ctx,
                        depth: self.depth,
                    })?,
                    tag,
                    scalar: None,
                },
                "L" => ValueInfo {
                    size: map.next_value_seed(NestedSeed {
                        ctx,
                        depth: self.depth,
                    })?,
                    tag,
                    scalar: None,
                },
                "NULL" => {
                    if !map.next_value::<bool>()? {
                        return Err(ctx.fail(ApiError::validation(
                            "One or more parameter values were invalid: Null attribute value types must \
                             have the value of true",
                        )));
                    }
                    ValueInfo {
                        size: 1,
                        tag,
                        scalar: None,
                    }
                }
                _ => {
                    map.next_value::<bool>()?;
                    ValueInfo {
                        size: 1,
                        tag,
                        scalar: None,
                    }
                }
            };
            out = Some(ValueInfo { tag, ..value });
        }
        out.ok_or_else(|| {
            ctx.fail(ApiError::validation(
                "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes",
            ))
        })
    }
}

/// An S, N or B value: checked and sized; its text kept when asked.
struct ScalarSeed<'c> {
    ctx: &'c Ctx,
    ty: ScalarType,
    keep: bool,
}

impl ScalarSeed<'_> {
    fn size<E: de::Error>(&self, s: &str) -> Result<u64, E> {
        scalar_size(self.ty, s).map_err(|e| self.ctx.fail(e))
    }
}

impl<'de, 'c> DeserializeSeed<'de> for ScalarSeed<'c> {
    type Value = ValueInfo<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, 'c> Visitor<'de> for ScalarSeed<'c> {
    type Value = ValueInfo<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(ValueInfo {
            size: self.size(s)?,
            tag: self.ty.as_str(),
            scalar: self.keep.then_some(Scalar {
                ty: self.ty,
                text: Cow::Borrowed(s),
            }),
        })
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(ValueInfo {
            size: self.size(s)?,
            tag: self.ty.as_str(),
            scalar: self.keep.then(|| Scalar {
                ty: self.ty,
                text: Cow::Owned(s.to_owned()),
            }),
        })
    }
}

fn scalar_size(ty: ScalarType, s: &str) -> Result<u64, ApiError> {
    match ty {
        ScalarType::S => Ok(s.len() as u64),
        ScalarType::N => number_size(s),
        ScalarType::B => base64_len(s),
    }
}

/// SS, NS or BS: the sum of the elements' sizes; never empty.
struct SetSeed<'c> {
    ctx: &'c Ctx,
    ty: ScalarType,
}

impl<'de, 'c> DeserializeSeed<'de> for SetSeed<'c> {
    type Value = u64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, 'c> Visitor<'de> for SetSeed<'c> {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of strings")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
        let mut size = 0;
        let mut n = 0;
        while let Some(v) = seq.next_element_seed(ScalarSeed {
            ctx: self.ctx,
            ty: self.ty,
            keep: false,
        })? {
            size += v.size;
            n += 1;
        }
        if n == 0 {
            let what = match self.ty {
                ScalarType::S => "string",
                ScalarType::N => "number",
                ScalarType::B => "binary",
            };
            return Err(self.ctx.fail(ApiError::validation(format!(
                "One or more parameter values were invalid: An {what} set  may not be empty"
            ))));
        }
        Ok(size)
    }
}

/// The body of an M or an L: 3 bytes, plus 1 byte per element, plus names (M) and element sizes.
struct NestedSeed<'c> {
    ctx: &'c Ctx,
    depth: u32,
}

impl<'de, 'c> DeserializeSeed<'de> for NestedSeed<'c> {
    type Value = u64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, 'c> Visitor<'de> for NestedSeed<'c> {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map (M) or a list (L) of AttributeValues")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u64, A::Error> {
        let mut size = 3;
        while let Some(name) = map.next_key::<Str<'de>>()? {
            let v = map.next_value_seed(self.element())?;
            size += name.0.len() as u64 + v.size + 1;
        }
        Ok(size)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
        let mut size = 3;
        while let Some(v) = seq.next_element_seed(self.element())? {
            size += v.size + 1;
        }
        Ok(size)
    }
}

impl<'c> NestedSeed<'c> {
    fn element(&self) -> ValueSeed<'c> {
        ValueSeed {
            ctx: self.ctx,
            depth: self.depth + 1,
            keep: false,
        }
    }
}

/// A DynamoDB number, taken apart: sign, significant digits and the decimal exponent of the first one.
struct Number<'a> {
    negative: bool,
    /// The mantissa text from the first to the last significant digit (may contain the point).
    significant: &'a str,
    count: u32,
    /// Value = d.ddd × 10^exponent.
    exponent: i64,
}

fn parse_number(s: &str) -> Option<Number<'_>> {
    let b = s.as_bytes();
    let mut i = 0;
    let negative = match b.first() {
        Some(b'-') => {
            i = 1;
            true
        }
        Some(b'+') => {
            i = 1;
            false
        }
        _ => false,
    };
    let mut int_digits: i64 = 0;
    let mut seen_point = false;
    let mut digit_pos: i64 = 0;
    let mut first: Option<(usize, i64)> = None;
    let mut last = (0usize, 0i64);
    while i < b.len() {
        match b[i] {
            c @ b'0'..=b'9' => {
                if c != b'0' {
                    if first.is_none() {
                        first = Some((i, digit_pos));
                    }
                    last = (i, digit_pos);
                }
                digit_pos += 1;
                if !seen_point {
                    int_digits += 1;
                }
            }
            b'.' if !seen_point => seen_point = true,
            b'e' | b'E' => break,
            _ => return None,
        }
        i += 1;
    }
    if digit_pos == 0 {
        return None;
    }
    let mut exp: i64 = 0;
    if i < b.len() {
        i += 1;
        let exp_negative = match b.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        if i == b.len() {
            return None;
        }
        for &c in &b[i..] {
            if !c.is_ascii_digit() {
                return None;
            }
            exp = (exp * 10 + i64::from(c - b'0')).min(1_000_000);
        }
        if exp_negative {
            exp = -exp;
        }
    }
    Some(match first {
        None => Number {
            negative: false,
            significant: "",
            count: 0,
            exponent: 0,
        },
        Some((start, pos)) => Number {
            negative,
            significant: &s[start..=last.0],
            count: (last.1 - pos + 1) as u32,
            exponent: int_digits - 1 - pos + exp,
        },
    })
}

/// A number's size: 1 byte per two significant digits, plus 1. Rejects what DynamoDB rejects: text that
/// is not a number, more than 38 significant digits, magnitudes outside 1E-130 ..= 9.99…E+125.
pub fn number_size(s: &str) -> Result<u64, ApiError> {
    let n = parse_number(s).ok_or_else(|| {
        ApiError::validation(format!(
            "The parameter cannot be converted to a numeric value: {s}"
        ))
    })?;
    if n.count > 38 {
        return Err(ApiError::validation(
            "Attempting to store more than 38 significant digits in a Number",
        ));
    }
    if n.count > 0 && n.exponent > 125 {
        return Err(ApiError::validation(
            "Number overflow. Attempting to store a number with magnitude larger than supported range",
        ));
    }
    if n.count > 0 && n.exponent < -130 {
        return Err(ApiError::validation(
            "Number underflow. Attempting to store a number with magnitude smaller than supported range",
        ));
    }
    Ok(u64::from(n.count.div_ceil(2)) + 1)
}

/// A number's canonical text: `-`, the significant digits, `E`, the exponent of the first digit
/// (`1.50` → `15E0`, `-0.012` → `-12E-2`, zero → `0`). Invalid numbers (already refused) map to themselves.
pub fn canonical_number(s: &str) -> String {
    let Some(n) = parse_number(s) else {
        return s.to_owned();
    };
    if n.count == 0 {
        return "0".to_owned();
    }
    let mut out = String::with_capacity(n.significant.len() + 8);
    if n.negative {
        out.push('-');
    }
    out.extend(n.significant.chars().filter(|c| *c != '.'));
    out.push('E');
    out.push_str(&n.exponent.to_string());
    out
}

/// The decoded length of standard, padded base64 text.
pub fn base64_len(s: &str) -> Result<u64, ApiError> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(4) {
        return Err(ApiError::serialization(format!(
            "Base64 encoded length is expected a multiple of 4 bytes but found: {}",
            b.len()
        )));
    }
    let pad = b.iter().rev().take(2).take_while(|&&c| c == b'=').count();
    let valid = b[..b.len() - pad]
        .iter()
        .all(|&c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/');
    if !valid {
        return Err(ApiError::serialization(
            "Invalid Base64 character in a binary value",
        ));
    }
    Ok((b.len() / 4 * 3 - pad) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size_of(item: &str) -> u64 {
        let raw: Box<RawValue> = serde_json::from_str(item).unwrap();
        let spec: TableSpec = "tab:pk:S".parse().unwrap();
        summarize(&raw, &spec).unwrap().size
    }

    #[test]
    fn sizes_follow_the_developer_guide() {
        // String: name + UTF-8 bytes ("é" is 2 bytes).
        assert_eq!(
            size_of(r#"{"pk":{"S":"abc"},"s":{"S":"é"}}"#),
            2 + 3 + 1 + 2
        );
        // Number: 1 byte per two significant digits + 1; leading and trailing zeros trimmed.
        assert_eq!(size_of(r#"{"n":{"N":"12345"}}"#), 1 + 3 + 1);
        assert_eq!(size_of(r#"{"n":{"N":"00123.4500"}}"#), 1 + 3 + 1);
        assert_eq!(size_of(r#"{"n":{"N":"1000000"}}"#), 1 + 1 + 1);
        // Binary: raw bytes ("AAEC" is 3 bytes, "AA==" is 1).
        assert_eq!(
            size_of(r#"{"b":{"B":"AAEC"},"c":{"B":"AA=="}}"#),
            1 + 3 + 1 + 1
        );
        // Null and Boolean: 1 byte.
        assert_eq!(size_of(r#"{"x":{"NULL":true},"y":{"BOOL":false}}"#), 2 + 2);
        // Empty List or Map: 3 bytes; each element 1 more byte.
        assert_eq!(size_of(r#"{"l":{"L":[]},"m":{"M":{}}}"#), 4 + 4);
        assert_eq!(
            size_of(r#"{"l":{"L":[{"S":"ab"},{"N":"1"}]}}"#),
            1 + 3 + (2 + 1) + (2 + 1)
        );
        assert_eq!(
            size_of(r#"{"m":{"M":{"k":{"S":"ab"}}}}"#),
            1 + 3 + (1 + 2 + 1)
        );
        // Sets: the sum of their elements.
        assert_eq!(size_of(r#"{"ss":{"SS":["a","bc"]}}"#), 2 + 3);
        assert_eq!(size_of(r#"{"ns":{"NS":["1","22","333"]}}"#), 2 + 2 + 2 + 3);
    }

    #[test]
    fn numbers_are_checked_and_canonical() {
        assert_eq!(canonical_number("1.50"), canonical_number("15E-1"));
        assert_eq!(canonical_number("1.50"), "15E0");
        assert_eq!(canonical_number("-0.012"), "-12E-2");
        assert_eq!(canonical_number("-0.0"), "0");
        assert_eq!(canonical_number("100"), "1E2");
        for bad in ["", "-", "1e", "1.2.3", "abc", "1 ", "0x10", "e5"] {
            assert!(number_size(bad).is_err(), "{bad:?} accepted");
        }
        assert!(number_size(&"1".repeat(39)).is_err());
        assert!(number_size(&"1".repeat(38)).is_ok());
        assert!(number_size("9.99E125").is_ok());
        assert!(number_size("1E126").is_err());
        assert!(number_size("1E-130").is_ok());
        assert!(number_size("1E-131").is_err());
    }

    #[test]
    fn base64_lengths() {
        assert_eq!(base64_len("").unwrap(), 0);
        assert_eq!(base64_len("AAE=").unwrap(), 2);
        assert!(base64_len("AAE").is_err());
        assert!(base64_len("AA*=").is_err());
    }
}
