//! Configuration from environment variables, for the Lambda functions (which have no command line), and the
//! name a process goes by in leases and checkpoints.

use std::time::Duration;

use crate::error::{Error, Result};

/// `name:pid` naming this process in leases and checkpoint holds: `name` is the Lambda function's name,
/// else the host's (`HOSTNAME`, else `/etc/hostname`), else `fallback`.
pub fn process_owner(fallback: &str) -> String {
    let set = |v: String| Some(v.trim().to_owned()).filter(|v| !v.is_empty());
    let name = std::env::var("AWS_LAMBDA_FUNCTION_NAME")
        .ok()
        .and_then(set)
        .or_else(|| std::env::var("HOSTNAME").ok().and_then(set))
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().and_then(set))
        .unwrap_or_else(|| fallback.to_owned());
    format!("{name}:{}", std::process::id())
}

/// A variable that must be set and non-empty.
pub fn required(name: &str) -> Result<String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(Error::Usage(format!(
            "environment variable {name} is not set; the function's configuration must define it"
        ))),
    }
}

/// A duration such as `30s` or `2m`, or `default` when the variable is unset.
pub fn duration(name: &str, default: Duration) -> Result<Duration> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => humantime::parse_duration(v.trim())
            .map_err(|e| Error::Usage(format!("environment variable {name}={v:?}: {e}"))),
        _ => Ok(default),
    }
}

/// A whole number, or `default` when the variable is unset.
pub fn number<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|_| {
            Error::Usage(format!(
                "environment variable {name}={v:?} is not a whole number"
            ))
        }),
        _ => Ok(default),
    }
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`), or `default` when the variable is unset.
pub fn flag(name: &str, default: bool) -> Result<bool> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => match v.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(Error::Usage(format!(
                "environment variable {name}={v:?} is not true or false"
            ))),
        },
        _ => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_names_the_variable() {
        // Unique names: tests run in parallel threads of one process.
        unsafe { std::env::set_var("DDB_PITR_TEST_ENV_D", "250ms") };
        assert_eq!(
            duration("DDB_PITR_TEST_ENV_D", Duration::ZERO).unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(
            duration("DDB_PITR_TEST_ENV_UNSET", Duration::from_secs(3)).unwrap(),
            Duration::from_secs(3)
        );
        unsafe { std::env::set_var("DDB_PITR_TEST_ENV_N", "x") };
        let e = number("DDB_PITR_TEST_ENV_N", 1u32).unwrap_err().to_string();
        assert!(e.contains("DDB_PITR_TEST_ENV_N"), "{e}");
        unsafe { std::env::set_var("DDB_PITR_TEST_ENV_F", "Off") };
        assert!(!flag("DDB_PITR_TEST_ENV_F", true).unwrap());
        assert!(flag("DDB_PITR_TEST_ENV_UNSET", true).unwrap());
        unsafe { std::env::set_var("DDB_PITR_TEST_ENV_G", "maybe") };
        let e = flag("DDB_PITR_TEST_ENV_G", true).unwrap_err().to_string();
        assert!(e.contains("DDB_PITR_TEST_ENV_G"), "{e}");
        let e = required("DDB_PITR_TEST_ENV_UNSET").unwrap_err().to_string();
        assert!(e.contains("DDB_PITR_TEST_ENV_UNSET is not set"), "{e}");
    }
}
