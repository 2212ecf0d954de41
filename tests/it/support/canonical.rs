//! Canonical text for DynamoDB items, so a table read back through the SDK can be compared with
//! DynamoDB-JSON lines from a fixture.
//!
//! The canonical form is compact JSON in DynamoDB-JSON shape with: attribute and map keys sorted;
//! `SS`/`NS`/`BS` elements sorted and de-duplicated (DynamoDB sets are unordered); numbers
//! normalized so numerically equal values compare equal (`12`, `12.0`, `1.2E1`, `0012` → `12`,
//! `-0` → `0`); binary as standard padded base64. Lists keep their order.
//!
//! Numbers are normalized as decimal strings, never floats: DynamoDB numbers carry up to 38
//! significant digits and exponents from -130 to +125, far beyond `f64`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

/// Longest value text shown in a mismatch report; items can be 400 KB.
const SHOW_CHARS: usize = 200;
/// Items of each kind (missing / extra / different) listed in a mismatch report.
const SHOW_ITEMS: usize = 5;

/// Attribute name → canonical value text, sorted by name.
type CanonItem = BTreeMap<String, String>;

/// Canonical text of an item read through the SDK.
pub fn canonical_item_json(item: &HashMap<String, AttributeValue>) -> String {
    render_item(&canon_item_av(item))
}

/// Canonical text of one DynamoDB-JSON item, e.g. `{"pk":{"S":"1"},"b":{"B":"MDAwMA=="}}`.
/// Panics on malformed input, naming what is wrong.
pub fn canonical_json_line(line: &str) -> String {
    render_item(&canon_item_line(line))
}

/// Canonical text of every item in a `.jsonl` file (one DynamoDB-JSON item per line; blank
/// lines ignored), sorted.
pub fn expected_from_jsonl(path: impl AsRef<Path>) -> Vec<String> {
    let mut out: Vec<String> = read_jsonl(path.as_ref()).iter().map(render_item).collect();
    out.sort();
    out
}

/// Panics with a readable diff unless `table` holds exactly the items in `expected_jsonl`
/// (compared canonically; see the module doc). Items are matched by primary key, read from
/// DescribeTable.
pub async fn assert_table_matches(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    expected_jsonl: impl AsRef<Path>,
) {
    let path = expected_jsonl.as_ref();
    let desc = ddb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeTable {table}: {e:?}"));
    let key_attrs: Vec<String> = desc
        .table()
        .map(|t| t.key_schema())
        .unwrap_or_default()
        .iter()
        .map(|k| k.attribute_name().to_owned())
        .collect();
    assert!(!key_attrs.is_empty(), "table {table} has no key schema");

    let actual: Vec<CanonItem> = super::scan_all(ddb, table)
        .await
        .iter()
        .map(canon_item_av)
        .collect();
    let expected = read_jsonl(path);
    if let Some(report) = diff_items(&key_attrs, &expected, &actual) {
        panic!("table {table} does not match {}:\n{report}", path.display());
    }
}

/// `None` when `actual` and `expected` hold the same items; otherwise a readable report.
fn diff_items(
    key_attrs: &[String],
    expected: &[CanonItem],
    actual: &[CanonItem],
) -> Option<String> {
    let key_of = |item: &CanonItem| -> String {
        let key: CanonItem = key_attrs
            .iter()
            .map(|k| {
                (
                    k.clone(),
                    item.get(k).cloned().unwrap_or_else(|| "<absent>".into()),
                )
            })
            .collect();
        render_item(&key)
    };
    let index = |items: &[CanonItem]| -> (BTreeMap<String, CanonItem>, Vec<String>) {
        let mut map = BTreeMap::new();
        let mut dups = Vec::new();
        for it in items {
            let k = key_of(it);
            if map.insert(k.clone(), it.clone()).is_some() {
                dups.push(k);
            }
        }
        (map, dups)
    };
    let (exp, exp_dups) = index(expected);
    let (act, act_dups) = index(actual);

    let missing: Vec<&String> = exp.keys().filter(|k| !act.contains_key(*k)).collect();
    let extra: Vec<&String> = act.keys().filter(|k| !exp.contains_key(*k)).collect();
    let different: Vec<&String> = exp
        .iter()
        .filter(|(k, v)| act.get(*k).is_some_and(|a| a != *v))
        .map(|(k, _)| k)
        .collect();
    if missing.is_empty() && extra.is_empty() && different.is_empty() && act_dups.is_empty() {
        return None;
    }

    let mut r = String::new();
    let _ = writeln!(
        r,
        "{} missing, {} extra, {} different (expected {} items, table has {}; key {:?})",
        missing.len(),
        extra.len(),
        different.len(),
        expected.len(),
        actual.len(),
        key_attrs
    );
    if !exp_dups.is_empty() {
        let _ = writeln!(r, "note: expected file repeats keys {:?}", first(&exp_dups));
    }
    if !act_dups.is_empty() {
        let _ = writeln!(r, "table returned duplicate keys {:?}", first(&act_dups));
    }
    if !missing.is_empty() {
        let _ = writeln!(r, "missing (expected, not in table):");
        for k in missing.iter().take(SHOW_ITEMS) {
            let _ = writeln!(
                r,
                "  key {}: {}",
                truncate(k),
                truncate(&render_item(&exp[*k]))
            );
        }
    }
    if !extra.is_empty() {
        let _ = writeln!(r, "extra (in table, not expected):");
        for k in extra.iter().take(SHOW_ITEMS) {
            let _ = writeln!(
                r,
                "  key {}: {}",
                truncate(k),
                truncate(&render_item(&act[*k]))
            );
        }
    }
    if !different.is_empty() {
        let _ = writeln!(r, "different:");
        for k in different.iter().take(SHOW_ITEMS) {
            let _ = writeln!(r, "  key {}:", truncate(k));
            let (e, a) = (&exp[*k], &act[*k]);
            let names: BTreeSet<&String> = e.keys().chain(a.keys()).collect();
            for name in names {
                let (ev, av) = (e.get(name), a.get(name));
                if ev != av {
                    let show = |v: Option<&String>| v.map_or("<absent>".into(), |v| truncate(v));
                    let _ = writeln!(
                        r,
                        "    {name:?}: expected {}, table has {}",
                        show(ev),
                        show(av)
                    );
                }
            }
        }
    }
    Some(r)
}

fn first(v: &[String]) -> Vec<String> {
    v.iter().take(SHOW_ITEMS).map(|s| truncate(s)).collect()
}

fn truncate(s: &str) -> String {
    match s.char_indices().nth(SHOW_CHARS) {
        None => s.to_owned(),
        Some((cut, _)) => format!("{}…({} bytes in all)", &s[..cut], s.len()),
    }
}

fn read_jsonl(path: &Path) -> Vec<CanonItem> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            std::panic::catch_unwind(|| canon_item_line(l)).unwrap_or_else(|_| {
                panic!(
                    "{}:{}: not a DynamoDB-JSON item (see above)",
                    path.display(),
                    i + 1
                )
            })
        })
        .collect()
}

fn render_item(item: &CanonItem) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in item.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&json_str(k));
        s.push(':');
        s.push_str(v);
    }
    s.push('}');
    s
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("string serializes")
}

fn typed(ty: &str, inner: String) -> String {
    format!("{{\"{ty}\":{inner}}}")
}

fn set(elems: impl IntoIterator<Item = String>) -> String {
    let sorted: BTreeSet<String> = elems.into_iter().map(|e| json_str(&e)).collect();
    format!("[{}]", sorted.into_iter().collect::<Vec<_>>().join(","))
}

fn number(n: &str) -> String {
    canonical_number(n).unwrap_or_else(|e| panic!("{e}"))
}

// ---- SDK side ----

fn canon_item_av(item: &HashMap<String, AttributeValue>) -> CanonItem {
    item.iter().map(|(k, v)| (k.clone(), canon_av(v))).collect()
}

fn canon_av(v: &AttributeValue) -> String {
    match v {
        AttributeValue::S(s) => typed("S", json_str(s)),
        AttributeValue::N(n) => typed("N", json_str(&number(n))),
        AttributeValue::B(b) => typed("B", json_str(&B64.encode(b.as_ref()))),
        AttributeValue::Bool(b) => typed("BOOL", b.to_string()),
        AttributeValue::Null(b) => typed("NULL", b.to_string()),
        AttributeValue::Ss(v) => typed("SS", set(v.iter().cloned())),
        AttributeValue::Ns(v) => typed("NS", set(v.iter().map(|n| number(n)))),
        AttributeValue::Bs(v) => typed("BS", set(v.iter().map(|b| B64.encode(b.as_ref())))),
        AttributeValue::L(v) => typed(
            "L",
            format!("[{}]", v.iter().map(canon_av).collect::<Vec<_>>().join(",")),
        ),
        AttributeValue::M(m) => typed("M", render_item(&canon_item_av(m))),
        other => panic!("attribute value of a type this harness does not know: {other:?}"),
    }
}

// ---- DynamoDB-JSON side ----

/// A JSON line is parsed into SDK values and canonicalised by the same code as items read back from a
/// table, so the two sides can only differ in what they hold.
fn canon_item_line(line: &str) -> CanonItem {
    canon_item_av(&item_from_json_line(line))
}

/// Parses one DynamoDB-JSON item into SDK values (for seeding tables from `.jsonl` fixtures).
pub fn item_from_json_line(line: &str) -> HashMap<String, AttributeValue> {
    let v: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {}", truncate(line)));
    let Value::Object(map) = v else {
        panic!("a DynamoDB-JSON item must be an object: {}", truncate(line))
    };
    map.iter()
        .map(|(k, v)| (k.clone(), json_to_av(v)))
        .collect()
}

fn json_to_av(v: &Value) -> AttributeValue {
    use aws_smithy_types::Blob;
    let bad = || -> ! {
        panic!(
            "not a DynamoDB-JSON attribute value: {}",
            truncate(&v.to_string())
        )
    };
    let Some((ty, inner)) = v
        .as_object()
        .filter(|m| m.len() == 1)
        .and_then(|m| m.iter().next())
    else {
        bad()
    };
    let str_of = |x: &Value| -> String {
        match x {
            Value::String(s) => s.clone(),
            Value::Number(n) if ty.starts_with('N') => n.to_string(),
            _ => bad(),
        }
    };
    let arr = || inner.as_array().unwrap_or_else(|| bad());
    let blob = |x: &Value| -> Blob {
        let s = str_of(x);
        Blob::new(
            B64.decode(&s)
                .unwrap_or_else(|e| panic!("B/BS value {s:?} is not standard base64: {e}")),
        )
    };
    match ty.as_str() {
        "S" => AttributeValue::S(str_of(inner)),
        "N" => AttributeValue::N(str_of(inner)),
        "B" => AttributeValue::B(blob(inner)),
        "BOOL" => AttributeValue::Bool(inner.as_bool().unwrap_or_else(|| bad())),
        "NULL" => AttributeValue::Null(inner.as_bool().unwrap_or_else(|| bad())),
        "SS" => AttributeValue::Ss(arr().iter().map(str_of).collect()),
        "NS" => AttributeValue::Ns(arr().iter().map(str_of).collect()),
        "BS" => AttributeValue::Bs(arr().iter().map(blob).collect()),
        "L" => AttributeValue::L(arr().iter().map(json_to_av).collect()),
        "M" => AttributeValue::M(
            inner
                .as_object()
                .unwrap_or_else(|| bad())
                .iter()
                .map(|(k, v)| (k.clone(), json_to_av(v)))
                .collect(),
        ),
        _ => bad(),
    }
}

// ---- numbers ----

/// Normalizes a DynamoDB number string so numerically equal numbers give equal text.
///
/// Plain decimal when that stays short (`12`, `-0.5`, `1000`), otherwise scientific with one
/// leading digit (`1.5E+100`, `1E-130`). Which form is chosen depends only on the value, so
/// equal values always produce identical text. String arithmetic only: no precision is lost.
pub fn canonical_number(s: &str) -> Result<String, String> {
    let err = |why: &str| format!("invalid DynamoDB number {s:?}: {why}");
    let t = s.trim();
    let (neg, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (mantissa, exp_text) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, f),
        None => (mantissa, ""),
    };
    let all_digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(err("no digits"));
    }
    if !all_digits(int_part) || !all_digits(frac_part) {
        return Err(err("unexpected character"));
    }
    let mut exp: i64 = match exp_text {
        None => 0,
        Some(e) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !all_digits(digits) || digits.len() > 9 {
                return Err(err("bad exponent"));
            }
            e.parse().map_err(|_| err("bad exponent"))?
        }
    };
    exp -= frac_part.len() as i64;

    // value = digits × 10^exp, then strip leading and trailing zeros.
    let all = format!("{int_part}{frac_part}");
    let digits = all.trim_start_matches('0');
    let trimmed = digits.trim_end_matches('0');
    exp += (digits.len() - trimmed.len()) as i64;
    let digits = trimmed;
    if digits.is_empty() {
        return Ok("0".to_owned());
    }

    let n = digits.len() as i64;
    let body = if exp >= 0 && n + exp <= 40 {
        format!("{digits}{}", "0".repeat(exp as usize))
    } else if exp < 0 && -exp < n {
        let point = (n + exp) as usize;
        format!("{}.{}", &digits[..point], &digits[point..])
    } else if exp < 0 && -exp - n < 40 {
        format!("0.{}{digits}", "0".repeat((-exp - n) as usize))
    } else {
        let sci_exp = exp + n - 1;
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        format!("{first}{frac}E{sci_exp:+}")
    };
    Ok(if neg { format!("-{body}") } else { body })
}
