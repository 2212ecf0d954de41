//! What one endpoint process serves: its tables, its limits and, optionally, an S3 root. Filled by the CLI
//! or by tests.

use std::path::PathBuf;
use std::str::FromStr;

/// The scalar types a key attribute may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarType {
    S,
    N,
    B,
}

impl ScalarType {
    pub fn as_str(self) -> &'static str {
        match self {
            ScalarType::S => "S",
            ScalarType::N => "N",
            ScalarType::B => "B",
        }
    }
}

impl FromStr for ScalarType {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s {
            "S" => Ok(ScalarType::S),
            "N" => Ok(ScalarType::N),
            "B" => Ok(ScalarType::B),
            other => Err(ConfigError::Spec(format!(
                "key type `{other}` is not a DynamoDB key type: use S, N or B"
            ))),
        }
    }
}

/// One attribute of the primary key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAttribute {
    pub name: String,
    pub ty: ScalarType,
}

/// A table and its key schema: `NAME:pk:S` or `NAME:pk:S:sk:N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub name: String,
    pub hash: KeyAttribute,
    pub range: Option<KeyAttribute>,
}

impl TableSpec {
    /// The key attributes in schema order (partition key first).
    pub fn key_attributes(&self) -> impl Iterator<Item = &KeyAttribute> {
        std::iter::once(&self.hash).chain(self.range.as_ref())
    }
}

impl FromStr for TableSpec {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        let parts: Vec<&str> = s.split(':').collect();
        let bad = || {
            ConfigError::Spec(format!(
                "table `{s}`: expected NAME:PK:TYPE or NAME:PK:TYPE:SK:TYPE, e.g. `restored:pk:S:sk:S`"
            ))
        };
        if parts.len() != 3 && parts.len() != 5 {
            return Err(bad());
        }
        let name = parts[0];
        // DynamoDB: 3 to 255 characters of a-z, A-Z, 0-9, '_', '-' and '.'.
        let valid_name = (3..=255).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !valid_name {
            return Err(ConfigError::Spec(format!(
                "table name `{name}` is not a valid DynamoDB table name (3-255 of a-z A-Z 0-9 _ - .)"
            )));
        }
        let attr = |n: &str, t: &str| -> Result<KeyAttribute, ConfigError> {
            if n.is_empty() {
                return Err(bad());
            }
            Ok(KeyAttribute {
                name: n.to_owned(),
                ty: t.parse()?,
            })
        };
        let hash = attr(parts[1], parts[2])?;
        let range = if parts.len() == 5 {
            let r = attr(parts[3], parts[4])?;
            if r.name == hash.name {
                return Err(ConfigError::Spec(format!(
                    "table `{name}`: partition and sort key must be different attributes"
                )));
            }
            Some(r)
        } else {
            None
        };
        Ok(TableSpec {
            name: name.to_owned(),
            hash,
            range,
        })
    }
}

/// What happens to a BatchWriteItem call that does not fit in the write-capacity bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ThrottleMode {
    /// Write the requests that fit, in order, and return the rest in `UnprocessedItems`; when none fits,
    /// fail the call with `ProvisionedThroughputExceededException` (what DynamoDB does).
    #[default]
    Unprocessed,
    /// Fail the whole call with `ProvisionedThroughputExceededException` unless every request fits.
    Error,
}

impl FromStr for ThrottleMode {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s {
            "unprocessed" => Ok(ThrottleMode::Unprocessed),
            "error" => Ok(ThrottleMode::Error),
            other => Err(ConfigError::Spec(format!(
                "throttle mode `{other}`: use `unprocessed` or `error`"
            ))),
        }
    }
}

/// Everything one endpoint serves.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub tables: Vec<TableSpec>,
    /// Write capacity per table, in WCU per second; `None` is on-demand without a limit.
    pub wcu: Option<u64>,
    /// Seconds of unused capacity kept as burst (DynamoDB keeps up to 300). The bucket holds
    /// `max(burst_seconds, 1) × wcu` units and starts full.
    pub burst_seconds: u64,
    pub throttle_mode: ThrottleMode,
    /// Keep every item (`GET /items`), not only counts and the key digest.
    pub store: bool,
    /// Keep only counters: no per-key state, no key digest, the lowest cost per item.
    pub count_only: bool,
    /// Probability per API request of a 500 or 503 answer (the request is not applied).
    pub fault_5xx_rate: f64,
    /// Probability per API request that the connection is closed without an answer (after the request
    /// was applied: the client cannot tell that its write happened).
    pub fault_drop_rate: f64,
    /// Seed of the fault-injection random numbers.
    pub seed: u64,
    /// Serve S3 path-style reads (and simple writes) of the files under this directory, one subdirectory
    /// per bucket, on the same port (see [`crate::s3`]).
    pub s3_root: Option<PathBuf>,
}

impl Config {
    /// A configuration serving `tables` with no limits and no faults.
    pub fn with_tables(tables: impl IntoIterator<Item = TableSpec>) -> Self {
        Config {
            tables: tables.into_iter().collect(),
            ..Config::default()
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        // An S3-only endpoint is useful on its own; a DynamoDB-only one needs something to write to.
        if self.tables.is_empty() && self.s3_root.is_none() {
            return Err(ConfigError::Spec(
                "no table: declare at least one with --table NAME:PK:TYPE[:SK:TYPE], or serve S3 only \
                 with --s3-root DIR"
                    .into(),
            ));
        }
        for (i, t) in self.tables.iter().enumerate() {
            if self.tables[..i].iter().any(|o| o.name == t.name) {
                return Err(ConfigError::Spec(format!(
                    "table `{}` is declared twice",
                    t.name
                )));
            }
        }
        if self.wcu == Some(0) {
            return Err(ConfigError::Spec(
                "--wcu 0 would refuse every write: give a positive rate, or leave it out for no limit"
                    .into(),
            ));
        }
        for (flag, p) in [
            ("--fault-5xx-rate", self.fault_5xx_rate),
            ("--fault-drop-rate", self.fault_drop_rate),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(ConfigError::Spec(format!(
                    "{flag} {p}: a probability between 0 and 1"
                )));
            }
        }
        if self.fault_5xx_rate + self.fault_drop_rate > 1.0 {
            return Err(ConfigError::Spec(
                "--fault-5xx-rate and --fault-drop-rate add up to more than 1".into(),
            ));
        }
        if self.store && self.count_only {
            return Err(ConfigError::Spec(
                "--store and --count-only exclude each other".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{0}")]
    Spec(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_specs_parse() {
        let t: TableSpec = "orders:pk:S:sk:N".parse().unwrap();
        assert_eq!(t.name, "orders");
        assert_eq!(t.hash.ty, ScalarType::S);
        assert_eq!(t.range.as_ref().unwrap().name, "sk");
        assert_eq!(t.range.unwrap().ty, ScalarType::N);
        let t: TableSpec = "big.table-1:id:B".parse().unwrap();
        assert!(t.range.is_none());
        for bad in [
            "t:pk:S",
            "table:pk",
            "table:pk:X",
            "table:pk:S:pk:S",
            "ta ble:pk:S",
        ] {
            assert!(bad.parse::<TableSpec>().is_err(), "{bad} accepted");
        }
    }
}
