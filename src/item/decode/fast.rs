//! A byte-level check of the usual FULL item, for [`super::scan_line`].
//!
//! It accepts a subset of what the serde path accepts: compact JSON (no whitespace), type descriptors and
//! numbers and base64 without escapes, surrogate escapes only in pairs, nesting up to [`MAX_DEPTH`]. Numbers and base64 go through the same checks as the serde path. For
//! anything else, valid or not, it answers `None` and the caller checks the line the general way, which also
//! words every error. So when it accepts an item, the serde path accepts it too, with the same key values.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{Names, TypeTag};
use crate::item::key::{KeySchema, KeyValue, KeyValues};
use crate::item::number::validate_number;

/// DynamoDB allows 32 levels of nesting.
const MAX_DEPTH: usize = 32;

/// The key values and the number of attributes of `item`, a whole JSON object, if it is in the subset this
/// checks and valid.
pub(super) fn scan_item<'a>(item: &'a str, key: &KeySchema) -> Option<(KeyValues<'a>, usize)> {
    let mut c = Cursor {
        s: item.as_bytes(),
        text: item,
        i: 0,
    };
    let mut values: KeyValues<'a> = [None, None];
    let count = c.object(0, Some((key, &mut values)))?;
    (c.i == c.s.len()).then_some((values, count))
}

struct Cursor<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn eat(&mut self, b: u8) -> Option<()> {
        (self.s.get(self.i) == Some(&b)).then(|| self.i += 1)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.s[self.i..]
            .starts_with(word)
            .then(|| self.i += word.len())
    }

    /// A string; its contents and whether it had escapes.
    fn string(&mut self) -> Option<(&'a str, bool)> {
        self.eat(b'"')?;
        let start = self.i;
        let mut escaped = false;
        loop {
            // Eight bytes at a time while none of them is a quote, a backslash or a control character.
            while let Some(chunk) = self.s.get(self.i..self.i + 8) {
                let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
                if needs_a_look(word) {
                    break;
                }
                self.i += 8;
            }
            match *self.s.get(self.i)? {
                b'"' => {
                    let text = &self.text[start..self.i];
                    self.i += 1;
                    return Some((text, escaped));
                }
                b'\\' => {
                    escaped = true;
                    match self.s.get(self.i + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 2,
                        b'u' => {
                            let (_, len) = escape_u(&self.s[self.i..])?;
                            self.i += len;
                        }
                        _ => return None,
                    }
                }
                0..0x20 => return None,
                _ => self.i += 1,
            }
        }
    }

    /// A string without escapes.
    fn plain(&mut self) -> Option<&'a str> {
        match self.string()? {
            (text, false) => Some(text),
            (_, true) => None,
        }
    }

    /// A non-empty list of strings; with `check`, of strings without escapes that it accepts.
    fn strings(&mut self, check: Option<fn(&str) -> bool>) -> Option<()> {
        self.eat(b'[')?;
        loop {
            match check {
                None => drop(self.string()?),
                Some(check) => {
                    if !check(self.plain()?) {
                        return None;
                    }
                }
            }
            if self.eat(b']').is_some() {
                return Some(());
            }
            self.eat(b',')?;
        }
    }

    /// `{"T": value}`; the key value it is when it can be one.
    fn value(&mut self, depth: usize) -> Option<KeyValue<'a>> {
        self.eat(b'{')?;
        let tag = TypeTag::from_name(self.plain()?)?;
        self.eat(b':')?;
        let value = match tag {
            TypeTag::S => match self.string()? {
                (text, false) => KeyValue::S(Cow::Borrowed(text)),
                (text, true) => KeyValue::S(Cow::Owned(unescape(text)?)),
            },
            TypeTag::N => {
                let n = self.plain()?;
                validate_number(n).ok()?;
                KeyValue::N(Cow::Borrowed(n))
            }
            TypeTag::B => {
                let b = self.plain()?;
                KeyValue::B(Cow::Owned(BASE64.decode(b).ok()?))
            }
            TypeTag::Bool => {
                if self.literal(b"true").is_none() {
                    self.literal(b"false")?;
                }
                KeyValue::Other("BOOL")
            }
            TypeTag::Null => {
                self.literal(b"true")?;
                KeyValue::Other("NULL")
            }
            TypeTag::Ss => {
                self.strings(None)?;
                KeyValue::Other("SS")
            }
            TypeTag::Ns => {
                self.strings(Some(|n| validate_number(n).is_ok()))?;
                KeyValue::Other("NS")
            }
            TypeTag::Bs => {
                self.strings(Some(super::base64_ok))?;
                KeyValue::Other("BS")
            }
            TypeTag::L => {
                self.eat(b'[')?;
                if self.eat(b']').is_none() {
                    loop {
                        self.nested(depth)?;
                        if self.eat(b']').is_some() {
                            break;
                        }
                        self.eat(b',')?;
                    }
                }
                KeyValue::Other("L")
            }
            TypeTag::M => {
                if depth >= MAX_DEPTH {
                    return None;
                }
                self.object(depth + 1, None)?;
                KeyValue::Other("M")
            }
        };
        self.eat(b'}')?;
        Some(value)
    }

    /// A value inside an `L`, one level down.
    fn nested(&mut self, depth: usize) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.value(depth + 1).map(drop)
    }

    /// A map of names to values; the number of names. With `key`, the key attributes' values are picked
    /// out.
    fn object(
        &mut self,
        depth: usize,
        mut key: Option<(&KeySchema, &mut KeyValues<'a>)>,
    ) -> Option<usize> {
        self.eat(b'{')?;
        let mut names = Names::default();
        if self.eat(b'}').is_none() {
            loop {
                let name = match self.string()? {
                    (text, false) => Cow::Borrowed(text),
                    (text, true) => Cow::Owned(unescape(text)?),
                };
                self.eat(b':')?;
                let value = self.value(depth)?;
                if let Some((schema, values)) = key.as_mut()
                    && let Some(slot) = schema.position(&name).and_then(|i| values.get_mut(i))
                {
                    *slot = Some(value);
                }
                names.push(name);
                if self.eat(b'}').is_some() {
                    break;
                }
                self.eat(b',')?;
            }
        }
        names.distinct()
    }
}

/// Whether any byte of `word` is `"`, `\\` or below 0x20 (bit tricks on eight bytes at once: a byte below
/// `n` leaves its high bit set in `(x - n per byte) & !x`, for bytes without their own high bit).
fn needs_a_look(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH;
    (below(word, 0x20)
        | below(word ^ (ONES * u64::from(b'"')), 1)
        | below(word ^ (ONES * u64::from(b'\\')), 1))
        != 0
}

/// `\uXXXX` at the start of `s`, or a surrogate pair of them: the character and the bytes it took. A lone
/// surrogate is left to the serde path (which refuses it).
fn escape_u(s: &[u8]) -> Option<(char, usize)> {
    let hex = |at: usize| -> Option<u32> {
        let digits = std::str::from_utf8(s.get(at..at + 4)?).ok()?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(digits, 16).ok()
    };
    if !s.starts_with(b"\\u") {
        return None;
    }
    let first = hex(2)?;
    match first {
        0xD800..=0xDBFF => {
            if !s[6..].starts_with(b"\\u") {
                return None;
            }
            let second = hex(8)?;
            if !(0xDC00..=0xDFFF).contains(&second) {
                return None;
            }
            let c = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
            Some((char::from_u32(c)?, 12))
        }
        0xDC00..=0xDFFF => None,
        _ => Some((char::from_u32(first)?, 6)),
    }
}

/// The text of a string whose escapes [`Cursor::string`] checked, unescaped.
fn unescape(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(rel) = bytes[i..].iter().position(|&b| b == b'\\') {
        out.push_str(&text[i..i + rel]);
        i += rel;
        let (c, len) = match bytes.get(i + 1)? {
            b'"' => ('"', 2),
            b'\\' => ('\\', 2),
            b'/' => ('/', 2),
            b'b' => ('\u{8}', 2),
            b'f' => ('\u{c}', 2),
            b'n' => ('\n', 2),
            b'r' => ('\r', 2),
            b't' => ('\t', 2),
            b'u' => escape_u(&bytes[i..])?,
            _ => return None,
        };
        out.push(c);
        i += len;
    }
    out.push_str(&text[i..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_needs_a_look_exactly_when_a_byte_does() {
        let special = |b: u8| b == b'"' || b == b'\\' || b < 0x20;
        fastrand::seed(5);
        for _ in 0..200_000 {
            let mut bytes = [0u8; 8];
            for b in &mut bytes {
                // Mostly ordinary bytes, sometimes any byte at all.
                *b = if fastrand::u8(..8) == 0 {
                    fastrand::u8(..)
                } else {
                    fastrand::u8(0x20..)
                };
            }
            assert_eq!(
                needs_a_look(u64::from_le_bytes(bytes)),
                bytes.iter().any(|&b| special(b)),
                "{bytes:?}"
            );
        }
    }
}
