//! DynamoDB's number rules: the syntax, precision and range it accepts, and equality by value.

use crate::error::truncate;

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
