//! The target table: DescribeTable checks before anything is written, and its capacity during a restore
//! ([`capacity`]).

pub mod capacity;

use aws_sdk_dynamodb::types::{
    KeyType as DdbKeyType, ScalarAttributeType, TableDescription, TableStatus,
};
use serde::Serialize;

use crate::aws::caller_account;
use crate::aws::error::sdk_error;
use crate::error::{Error, Result};
use crate::item::key::{KeyAttr, KeySchema, KeyType};

#[derive(Debug, Clone, Serialize)]
pub struct TableInfo {
    pub name: String,
    pub arn: Option<String>,
    pub key: KeySchema,
}

/// DescribeTable: the table must exist and be ACTIVE. Read-only.
pub async fn describe(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<TableInfo> {
    info(table, &fetch(client, table).await?)
}

/// One DescribeTable call, with a missing table reported as what to do about it. Read-only.
pub async fn fetch(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<TableDescription> {
    let err = |message: String| Error::Table {
        table: table.to_owned(),
        message,
    };
    let out = match client.describe_table().table_name(table).send().await {
        Ok(out) => out,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            let region = client
                .config()
                .region()
                .map_or_else(|| "this region".to_owned(), |r| format!("region {r}"));
            let hint = match similar_tables(client, table).await.as_slice() {
                [] => String::new(),
                names => format!(" Did you mean {}?", names.join(" or ")),
            };
            return Err(err(format!(
                "{MISSING} in {region} of this account.{hint} Pass --region if it is in another region, or \
                 create it with the source table's key schema (see `aws dynamodb describe-table` on the \
                 source) and run again"
            )));
        }
        Err(e) => return Err(sdk_error(format!("DescribeTable {table}"), &e)),
    };
    out.table
        .ok_or_else(|| err("DescribeTable returned no table description".into()))
}

/// The start of the message of a table that does not exist, which [`name_the_account`] completes.
const MISSING: &str = "does not exist";

/// Tables of the account and region whose names differ from `table` only in case, or by at most two
/// characters (ListTables, when allowed; nothing when not).
async fn similar_tables(client: &aws_sdk_dynamodb::Client, table: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut start: Option<String> = None;
    // At most 10 pages of 100: a suggestion, not an inventory.
    for _ in 0..10 {
        let Ok(out) = client
            .list_tables()
            .set_exclusive_start_table_name(start.take())
            .send()
            .await
        else {
            break;
        };
        names.extend(out.table_names().iter().cloned());
        match out.last_evaluated_table_name() {
            Some(last) => start = Some(last.to_owned()),
            None => break,
        }
    }
    let want = table.to_lowercase();
    let mut close: Vec<(usize, String)> = names
        .into_iter()
        .filter(|n| n != table)
        .map(|n| (edit_distance(&n.to_lowercase(), &want), n))
        .filter(|(d, _)| *d <= 2)
        .collect();
    close.sort();
    close
        .into_iter()
        .take(3)
        .map(|(_, n)| format!("`{n}`"))
        .collect()
}

/// Levenshtein distance, on characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// A missing-table error with the account named (sts:GetCallerIdentity, which needs no permission); any
/// other error as it is.
pub async fn name_the_account(e: Error, sts: &aws_sdk_sts::Client) -> Error {
    match e {
        Error::Table { table, message } if message.starts_with(MISSING) => {
            let message = match caller_account(sts).await {
                Ok(account) => {
                    message.replacen("of this account", &format!("of account {account}"), 1)
                }
                Err(_) => message,
            };
            Error::Table { table, message }
        }
        other => other,
    }
}

/// The checks a restore makes on a table's description: ACTIVE (or UPDATING), and a key schema of scalar
/// attributes with definitions.
pub fn info(table: &str, desc: &TableDescription) -> Result<TableInfo> {
    let err = |message: String| Error::Table {
        table: table.to_owned(),
        message,
    };
    // An UPDATING table (a GSI being added, capacity changing) accepts writes.
    match desc.table_status() {
        Some(TableStatus::Active | TableStatus::Updating) => {}
        other => {
            return Err(err(format!(
                "is {}, not ACTIVE; wait until it is ACTIVE and run again",
                other.map(|s| s.as_str()).unwrap_or("in an unknown state")
            )));
        }
    }
    let type_of = |name: &str| -> Result<KeyType> {
        let def = desc
            .attribute_definitions()
            .iter()
            .find(|d| d.attribute_name() == name)
            .ok_or_else(|| err(format!("key attribute {name} has no attribute definition")))?;
        match def.attribute_type() {
            ScalarAttributeType::S => Ok(KeyType::S),
            ScalarAttributeType::N => Ok(KeyType::N),
            ScalarAttributeType::B => Ok(KeyType::B),
            other => Err(err(format!(
                "key attribute {name} has unsupported type {other}"
            ))),
        }
    };
    let mut attrs = Vec::new();
    for role in [DdbKeyType::Hash, DdbKeyType::Range] {
        if let Some(k) = desc.key_schema().iter().find(|k| *k.key_type() == role) {
            attrs.push(KeyAttr {
                name: k.attribute_name().to_owned(),
                ty: type_of(k.attribute_name())?,
            });
        }
    }
    if attrs.is_empty() {
        return Err(err("DescribeTable returned no key schema".into()));
    }
    Ok(TableInfo {
        name: table.to_owned(),
        arn: desc.table_arn().map(str::to_owned),
        key: KeySchema { attrs },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn describe_requires_an_active_table() {
        use aws_sdk_dynamodb::Client;
        use aws_sdk_dynamodb::operation::describe_table::{
            DescribeTableError, DescribeTableOutput,
        };
        use aws_sdk_dynamodb::types::error::ResourceNotFoundException;
        use aws_sdk_dynamodb::types::{AttributeDefinition, KeySchemaElement, TableDescription};
        use aws_smithy_mocks::{RuleMode, mock, mock_client};

        let table = |status: TableStatus| {
            TableDescription::builder()
                .table_status(status)
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name("sk")
                        .key_type(DdbKeyType::Range)
                        .build()
                        .unwrap(),
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name("pk")
                        .key_type(DdbKeyType::Hash)
                        .build()
                        .unwrap(),
                )
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name("pk")
                        .attribute_type(ScalarAttributeType::S)
                        .build()
                        .unwrap(),
                )
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name("sk")
                        .attribute_type(ScalarAttributeType::N)
                        .build()
                        .unwrap(),
                )
                .build()
        };
        let missing = mock!(Client::describe_table).then_error(|| {
            DescribeTableError::ResourceNotFoundException(
                ResourceNotFoundException::builder().build(),
            )
        });
        // The missing table's "did you mean": one table of another case.
        let listed = mock!(Client::list_tables).then_output(|| {
            aws_sdk_dynamodb::operation::list_tables::ListTablesOutput::builder()
                .table_names("T")
                .table_names("unrelated")
                .build()
        });
        let creating = mock!(Client::describe_table).then_output(move || {
            DescribeTableOutput::builder()
                .table(table(TableStatus::Creating))
                .build()
        });
        let active = mock!(Client::describe_table).then_output(move || {
            DescribeTableOutput::builder()
                .table(table(TableStatus::Active))
                .build()
        });
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::Sequential,
            &[&missing, &listed, &creating, &active]
        );

        let e = describe(&client, "t").await.unwrap_err().to_string();
        assert!(e.contains("table t: does not exist"), "{e}");
        assert!(e.contains("Did you mean `T`?"), "{e}");
        let e = describe(&client, "t").await.unwrap_err().to_string();
        assert!(e.contains("is CREATING, not ACTIVE"), "{e}");
        let info = describe(&client, "t").await.unwrap();
        assert_eq!(
            info.key,
            KeySchema::of(&[("pk", KeyType::S), ("sk", KeyType::N)]),
            "HASH first, whatever order DescribeTable lists them in"
        );
    }
}
