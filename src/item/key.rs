//! The key every written item must carry: the table's key schema, key values as the checks see them, and
//! the key hash that keeps two writes of one key in order.

use std::borrow::Cow;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::number::normalize_number;
use super::{Item, WriteOp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyType {
    S,
    N,
    B,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAttr {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: KeyType,
}

/// Partition key, then the sort key if the table has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySchema {
    pub attrs: Vec<KeyAttr>,
}

/// A key attribute's value, as the key checks see it: from a decoded item ([`KeyValue::of`]) or straight
/// from a line's JSON ([`super::decode::scan_line`]).
#[derive(Debug, Clone, PartialEq)]
pub enum KeyValue<'a> {
    S(Cow<'a, str>),
    /// A number that passed [`super::number::validate_number`].
    N(Cow<'a, str>),
    B(Cow<'a, [u8]>),
    /// Any other type, by its descriptor (`BOOL`, `M`...).
    Other(&'static str),
}

impl<'a> KeyValue<'a> {
    pub fn of(value: &'a AttributeValue) -> Self {
        match value {
            AttributeValue::S(s) => KeyValue::S(Cow::Borrowed(s)),
            AttributeValue::N(n) => KeyValue::N(Cow::Borrowed(n)),
            AttributeValue::B(b) => KeyValue::B(Cow::Borrowed(b.as_ref())),
            AttributeValue::Bool(_) => KeyValue::Other("BOOL"),
            AttributeValue::Null(_) => KeyValue::Other("NULL"),
            AttributeValue::Ss(_) => KeyValue::Other("SS"),
            AttributeValue::Ns(_) => KeyValue::Other("NS"),
            AttributeValue::Bs(_) => KeyValue::Other("BS"),
            AttributeValue::L(_) => KeyValue::Other("L"),
            AttributeValue::M(_) => KeyValue::Other("M"),
            _ => KeyValue::Other("an unknown type"),
        }
    }

    fn describe(&self) -> String {
        match self {
            KeyValue::S(s) if s.is_empty() => "an empty string".into(),
            KeyValue::B(b) if b.is_empty() => "an empty binary".into(),
            KeyValue::S(_) => "of type S".into(),
            KeyValue::N(_) => "of type N".into(),
            KeyValue::B(_) => "of type B".into(),
            KeyValue::Other(tag) => format!("of type {tag}"),
        }
    }
}

/// The values of a write's key attributes, in [`KeySchema::attrs`] order (a key has one or two).
pub type KeyValues<'a> = [Option<KeyValue<'a>>; 2];

impl KeySchema {
    /// Checks that a write carries the table's key. A delete's `Keys` must hold exactly the key attributes,
    /// because DeleteRequest rejects any other attribute. DynamoDB also rejects empty S and B key values.
    pub fn check(&self, op: &WriteOp) -> std::result::Result<(), String> {
        let item = op.item();
        let delete_attrs = matches!(op, WriteOp::Delete(_)).then_some(item.len());
        self.check_values(&self.values_of(item), delete_attrs)
    }

    /// [`KeySchema::check`] on key values already picked out; `delete_attrs` is the number of attributes
    /// in a delete's `Keys`, `None` for a put.
    pub fn check_values(
        &self,
        values: &KeyValues<'_>,
        delete_attrs: Option<usize>,
    ) -> std::result::Result<(), String> {
        for (attr, value) in self.attrs.iter().zip(values) {
            let Some(value) = value else {
                return Err(format!(
                    "the item has no key attribute {:?} ({:?}); the table's key schema is {self}",
                    attr.name, attr.ty
                ));
            };
            let ok = match (attr.ty, value) {
                (KeyType::S, KeyValue::S(s)) => !s.is_empty(),
                (KeyType::N, KeyValue::N(_)) => true,
                (KeyType::B, KeyValue::B(b)) => !b.is_empty(),
                _ => false,
            };
            if !ok {
                return Err(format!(
                    "key attribute {:?} is {}, but the table's key schema is {self}",
                    attr.name,
                    value.describe()
                ));
            }
        }
        if let Some(n) = delete_attrs
            && n != self.attrs.len()
        {
            return Err(format!(
                "Keys holds {n} attributes but the table's key schema is {self}"
            ));
        }
        Ok(())
    }

    /// A hash of the item's key, for spotting two writes to one key close together. Equal keys always hash
    /// equal; a rare collision only costs an unnecessary ordering barrier. Call after [`KeySchema::check`].
    pub fn key_hash(&self, item: &Item) -> u64 {
        self.hash_values(&self.values_of(item))
    }

    /// [`KeySchema::key_hash`] on key values already picked out.
    pub fn hash_values(&self, values: &KeyValues<'_>) -> u64 {
        let mut h = DefaultHasher::new();
        for value in values.iter().take(self.attrs.len()) {
            match value {
                Some(KeyValue::S(s)) => s.as_bytes().hash(&mut h),
                Some(KeyValue::N(n)) => normalize_number(n).hash(&mut h),
                Some(KeyValue::B(b)) => b.as_ref().hash(&mut h),
                _ => 0u8.hash(&mut h),
            }
        }
        h.finish()
    }

    /// A key schema from (name, type) pairs, partition key first.
    #[cfg(test)]
    pub(crate) fn of(attrs: &[(&str, KeyType)]) -> Self {
        KeySchema {
            attrs: attrs
                .iter()
                .map(|(name, ty)| KeyAttr {
                    name: (*name).into(),
                    ty: *ty,
                })
                .collect(),
        }
    }

    /// The position of `name` in the key, if it is a key attribute.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.attrs.iter().position(|a| a.name == name)
    }

    fn values_of<'a>(&self, item: &'a Item) -> KeyValues<'a> {
        let mut values = [None, None];
        for (slot, attr) in values.iter_mut().zip(&self.attrs) {
            *slot = item.get(&attr.name).map(KeyValue::of);
        }
        values
    }
}

impl std::fmt::Display for KeySchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .attrs
            .iter()
            .zip(["HASH", "RANGE"])
            .map(|(a, role)| format!("{} ({:?}, {role})", a.name, a.ty))
            .collect();
        f.write_str(&parts.join(" + "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::item;
    use aws_sdk_dynamodb::primitives::Blob;

    fn schema() -> KeySchema {
        KeySchema {
            attrs: vec![
                KeyAttr {
                    name: "pk".into(),
                    ty: KeyType::S,
                },
                KeyAttr {
                    name: "sk".into(),
                    ty: KeyType::N,
                },
            ],
        }
    }

    #[test]
    fn key_checks() {
        let s = schema();
        let good = item(&[
            ("pk", AttributeValue::S("a".into())),
            ("sk", AttributeValue::N("1".into())),
            ("x", AttributeValue::Null(true)),
        ]);
        s.check(&WriteOp::Put(good.clone())).unwrap();
        let e = s.check(&WriteOp::Delete(good)).unwrap_err();
        assert!(e.contains("Keys holds 3 attributes"), "{e}");
        let missing = item(&[("pk", AttributeValue::S("a".into()))]);
        assert!(
            s.check(&WriteOp::Put(missing))
                .unwrap_err()
                .contains("no key attribute \"sk\"")
        );
        let wrong = item(&[
            ("pk", AttributeValue::B(Blob::new(vec![1]))),
            ("sk", AttributeValue::N("1".into())),
        ]);
        let e = s.check(&WriteOp::Put(wrong)).unwrap_err();
        assert!(
            e.contains("\"pk\" is of type B") && e.contains("pk (S, HASH) + sk (N, RANGE)"),
            "{e}"
        );
        let empty = item(&[
            ("pk", AttributeValue::S(String::new())),
            ("sk", AttributeValue::N("1".into())),
        ]);
        assert!(
            s.check(&WriteOp::Put(empty))
                .unwrap_err()
                .contains("empty string")
        );
    }

    #[test]
    fn key_hashes_separate_fields() {
        let s = schema();
        let fp = |pk: &str, sk: &str| {
            s.key_hash(&item(&[
                ("pk", AttributeValue::S(pk.into())),
                ("sk", AttributeValue::N(sk.into())),
            ]))
        };
        assert_eq!(fp("a", "1"), fp("a", "1"));
        assert_eq!(
            fp("a", "1"),
            fp("a", "1.0"),
            "DynamoDB compares number keys by value"
        );
        assert_ne!(fp("a1", "2"), fp("a", "12"));
    }
}
