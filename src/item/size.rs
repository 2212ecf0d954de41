//! DynamoDB item sizes and the write units they cost, for `ddb-pitr validate`'s estimates.
//!
//! The rules are DynamoDB's documented ones ("DynamoDB item sizes and formats", CapacityUnitCalculations):
//! an item's size is the sum, over its attributes, of the attribute name's UTF-8 bytes plus the value's
//! size, where
//! - S: UTF-8 bytes; B: raw bytes (not the base64 text);
//! - N: "approximately" 1 byte per two significant digits, plus 1 (leading and trailing zeros trimmed);
//! - BOOL and NULL: 1 byte;
//! - L and M: 3 bytes of overhead, plus the size of each element, plus 1 byte per element (a map element's
//!   size includes its name);
//! - SS, NS, BS: the sum of the elements' sizes.
//!
//! One write capacity unit covers a write of an item of up to 1 KB (1,024 bytes); larger items cost one
//! unit per started KB. An on-demand write request unit is counted the same way.

use aws_sdk_dynamodb::types::AttributeValue;

use crate::item::Item;

/// Bytes in the KB that capacity units are counted in (DynamoDB's units are binary).
pub const KB: u64 = 1024;

/// The size of an item (its attribute names and values), in bytes.
pub fn item_size(item: &Item) -> u64 {
    item.iter()
        .map(|(name, value)| attribute_size(name, value))
        .sum()
}

/// The size of one attribute: its name's UTF-8 bytes plus its value's size.
pub fn attribute_size(name: &str, value: &AttributeValue) -> u64 {
    name.len() as u64 + value_size(value)
}

/// The size of a value without its name.
pub fn value_size(value: &AttributeValue) -> u64 {
    match value {
        AttributeValue::S(s) => s.len() as u64,
        AttributeValue::B(b) => b.as_ref().len() as u64,
        AttributeValue::N(n) => number_size(n),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(v) => v.iter().map(|s| s.len() as u64).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len() as u64).sum(),
        AttributeValue::L(v) => 3 + v.iter().map(|e| 1 + value_size(e)).sum::<u64>(),
        AttributeValue::M(m) => 3 + m.iter().map(|(k, e)| 1 + attribute_size(k, e)).sum::<u64>(),
        // A type this SDK version does not know: count nothing rather than guess.
        _ => 0,
    }
}

/// `ceil(significant digits / 2) + 1`. Significant digits are the mantissa's digits with leading and
/// trailing zeros trimmed, so `0` has none and costs 1 byte.
pub fn number_size(n: &str) -> u64 {
    let mantissa = n.split(['e', 'E']).next().unwrap_or_default();
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    let start = digits.iter().position(|&d| d != b'0');
    let significant = match start {
        None => 0,
        Some(start) => {
            let end = digits
                .iter()
                .rposition(|&d| d != b'0')
                .expect("a non-zero digit exists");
            (end - start + 1) as u64
        }
    };
    significant.div_ceil(2) + 1
}

/// Write capacity units (or on-demand write request units) of one standard write of an item of `size`
/// bytes: one per started KB, and at least one (a delete of a missing item still costs one).
pub fn wcu(size: u64) -> u64 {
    size.div_ceil(KB).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::item;
    use aws_sdk_dynamodb::primitives::Blob;

    #[test]
    fn documented_string_example() {
        // "an item with two attributes: a String attribute named shirt-color with value R and another
        // attribute named shirt-size with value M. The total size of that item is 23 bytes."
        let shirt = item(&[
            ("shirt-color", AttributeValue::S("R".into())),
            ("shirt-size", AttributeValue::S("M".into())),
        ]);
        assert_eq!(item_size(&shirt), 23);
    }

    #[test]
    fn strings_are_utf8_bytes() {
        assert_eq!(attribute_size("ä", &AttributeValue::S("€".into())), 2 + 3);
    }

    #[test]
    fn binaries_count_raw_bytes_not_base64() {
        let b = AttributeValue::B(Blob::new(vec![0u8; 10]));
        assert_eq!(attribute_size("b", &b), 1 + 10);
        let bs = AttributeValue::Bs(vec![Blob::new(vec![1, 2]), Blob::new(vec![3])]);
        assert_eq!(value_size(&bs), 3);
    }

    #[test]
    fn numbers_trim_zeros_and_count_digit_pairs() {
        assert_eq!(number_size("0"), 1);
        assert_eq!(number_size("1"), 2);
        assert_eq!(number_size("12"), 2);
        assert_eq!(number_size("123"), 3);
        assert_eq!(number_size("-123"), 3, "the sign is not a digit");
        assert_eq!(number_size("1000"), 2, "trailing zeros are trimmed");
        assert_eq!(number_size("000123.4500"), 4, "1,2,3,4,5: five digits");
        assert_eq!(number_size("0.001"), 2);
        assert_eq!(number_size("1.5E+10"), 2, "the exponent is not significant");
        // 38 significant digits, DynamoDB's maximum.
        assert_eq!(number_size(&"9".repeat(38)), 20);
    }

    #[test]
    fn bool_and_null_are_one_byte() {
        assert_eq!(attribute_size("flag", &AttributeValue::Bool(true)), 5);
        assert_eq!(attribute_size("none", &AttributeValue::Null(true)), 5);
    }

    #[test]
    fn lists_and_maps_have_three_bytes_overhead_and_one_per_element() {
        // "The size of an empty List or Map is (number of UTF-8-encoded bytes of attribute name) + (3 bytes)."
        assert_eq!(attribute_size("l", &AttributeValue::L(vec![])), 1 + 3);
        assert_eq!(
            attribute_size("m", &AttributeValue::M(Default::default())),
            1 + 3
        );
        let list = AttributeValue::L(vec![
            AttributeValue::S("ab".into()),
            AttributeValue::N("7".into()),
        ]);
        assert_eq!(value_size(&list), 3 + (1 + 2) + (1 + 2));
        let map = AttributeValue::M(item(&[("k", AttributeValue::S("xyz".into()))]));
        assert_eq!(value_size(&map), 3 + 1 + (1 + 3));
        let nested = AttributeValue::L(vec![map.clone()]);
        assert_eq!(value_size(&nested), 3 + 1 + value_size(&map));
    }

    #[test]
    fn sets_are_the_sum_of_their_elements() {
        let ss = AttributeValue::Ss(vec!["a".into(), "bcd".into()]);
        assert_eq!(value_size(&ss), 4);
        let ns = AttributeValue::Ns(vec!["1".into(), "1234".into()]);
        assert_eq!(value_size(&ns), 2 + 3);
    }

    #[test]
    fn write_units_per_started_kilobyte() {
        // "If you write a 500-byte item it consumes 1 WCU; a 3.5 KB item consumes 4."
        assert_eq!(wcu(0), 1, "every write costs at least one unit");
        assert_eq!(wcu(500), 1);
        assert_eq!(wcu(1024), 1);
        assert_eq!(wcu(1025), 2);
        assert_eq!(wcu(3584), 4);
        assert_eq!(wcu(400 * 1024), 400);
    }
}
