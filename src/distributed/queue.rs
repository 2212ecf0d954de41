//! The file queue: one SQS message per data file, and sending them in batches without losing any.

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use serde::{Deserialize, Serialize};

use crate::aws::error::sdk_error;
use crate::error::{Error, Result, truncate};
use crate::write::retry::RetryPolicy;

use super::control::SCHEMA_VERSION;

/// The SQS message body that asks for one data file to be restored. It names the file; everything else
/// (bucket, MD5, offset) is read from the control table, so a message never carries stale state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMessage {
    pub v: u32,
    pub restore_id: String,
    pub export_index: usize,
    pub key: String,
}

impl FileMessage {
    pub fn new(restore_id: &str, export_index: usize, key: &str) -> Self {
        FileMessage {
            v: SCHEMA_VERSION,
            restore_id: restore_id.to_owned(),
            export_index,
            key: key.to_owned(),
        }
    }

    pub fn to_body(&self) -> String {
        serde_json::to_string(self).expect("message serialises")
    }

    pub fn parse(body: &str) -> Result<Self> {
        let m: FileMessage = serde_json::from_str(body).map_err(|e| {
            Error::Usage(format!(
                "message body is not a ddb-pitr file message ({e}): {}",
                truncate(body, 200)
            ))
        })?;
        if m.v != SCHEMA_VERSION {
            return Err(Error::Usage(format!(
                "message format {} is not supported by this worker (it reads format {SCHEMA_VERSION})",
                m.v
            )));
        }
        Ok(m)
    }
}

/// SendMessageBatch with per-entry retries: entries that failed on the server side are sent again with
/// backoff; an entry refused because of the request itself (`SenderFault`) is an error at once.
pub async fn send_message_batch(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    bodies: Vec<String>,
) -> Result<()> {
    let policy = RetryPolicy::default();
    let mut pending: Vec<(usize, String)> = bodies.into_iter().enumerate().collect();
    let mut attempt = 0;
    while !pending.is_empty() {
        attempt += 1;
        let entries = pending
            .iter()
            .map(|(i, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .build()
                    .expect("id and body set")
            })
            .collect();
        let out = sqs
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await;
        let failed_ids: Vec<(String, String)> = match out {
            Ok(out) => {
                if let Some(f) = out.failed().iter().find(|f| f.sender_fault()) {
                    return Err(Error::Aws {
                        operation: format!("SendMessageBatch {queue_url}"),
                        message: format!(
                            "{}: {}",
                            f.code(),
                            f.message().unwrap_or("the queue refused the message")
                        ),
                        retryable: false,
                    });
                }
                out.failed()
                    .iter()
                    .map(|f| (f.id().to_owned(), f.code().to_owned()))
                    .collect()
            }
            Err(e) => {
                let err = sdk_error(format!("SendMessageBatch {queue_url}"), &e);
                if !err.is_retryable() || attempt >= policy.max_attempts {
                    return Err(err);
                }
                tokio::time::sleep(policy.backoff(attempt)).await;
                continue;
            }
        };
        pending.retain(|(i, _)| failed_ids.iter().any(|(id, _)| *id == i.to_string()));
        if !pending.is_empty() {
            if attempt >= policy.max_attempts {
                return Err(Error::Aws {
                    operation: format!("SendMessageBatch {queue_url}"),
                    message: format!(
                        "{} message(s) still failing after {attempt} attempts: {}",
                        pending.len(),
                        failed_ids[0].1
                    ),
                    retryable: true,
                });
            }
            tracing::warn!(
                failed = pending.len(),
                code = failed_ids[0].1,
                "SendMessageBatch partly failed; resending"
            );
            tokio::time::sleep(policy.backoff(attempt)).await;
        }
    }
    Ok(())
}

/// What the planner reads of the queue: the messages it holds, visible, in flight or delayed (SQS's
/// approximate counts, which lag by up to a minute), and how long a message can live in it before the
/// dead-letter queue takes it (its visibility timeout times `maxReceiveCount`), if it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueState {
    pub held: u64,
    pub dead_letter_after: Option<std::time::Duration>,
}

pub async fn queue_state(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Result<QueueState> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(A::ApproximateNumberOfMessagesDelayed)
        .attribute_names(A::VisibilityTimeout)
        .attribute_names(A::RedrivePolicy)
        .send()
        .await
        .map_err(|e| sdk_error(format!("GetQueueAttributes {queue_url}"), &e))?;
    let attrs = out.attributes();
    let number = |name: A| {
        attrs
            .and_then(|a| a.get(&name))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let held = [
        A::ApproximateNumberOfMessages,
        A::ApproximateNumberOfMessagesNotVisible,
        A::ApproximateNumberOfMessagesDelayed,
    ]
    .into_iter()
    .filter_map(number)
    .sum();
    let receives = attrs
        .and_then(|a| a.get(&A::RedrivePolicy))
        .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .and_then(|p| match &p["maxReceiveCount"] {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        });
    let dead_letter_after = match (number(A::VisibilityTimeout), receives) {
        (Some(visibility), Some(receives)) => Some(std::time::Duration::from_secs(
            visibility.saturating_mul(receives),
        )),
        _ => None,
    };
    Ok(QueueState {
        held,
        dead_letter_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_round_trip_and_rejections() {
        let m = FileMessage::new("r1", 2, "AWSDynamoDB/x/data/a.json.gz");
        assert_eq!(FileMessage::parse(&m.to_body()).unwrap(), m);
        let e = FileMessage::parse("{\"hello\":1}").unwrap_err().to_string();
        assert!(e.contains("not a ddb-pitr file message"), "{e}");
        let e = FileMessage::parse(r#"{"v":9,"restore_id":"r","export_index":0,"key":"k"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("format 9"), "{e}");
    }
}
