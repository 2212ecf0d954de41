//! Starting an endpoint and talking to it.

use std::collections::HashMap;
use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::batch_write_item::{BatchWriteItemError, BatchWriteItemOutput};
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use ddb_bench_endpoint::{Config, ManualClock, Running, TableSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A running endpoint on a manual clock, and an SDK client for it (SDK retries off: every call is seen).
pub struct Harness {
    pub server: Running,
    pub client: Client,
    pub clock: Arc<ManualClock>,
}

pub fn table(spec: &str) -> TableSpec {
    spec.parse().expect("a valid table spec")
}

pub async fn start(config: Config) -> Harness {
    let clock = ManualClock::new();
    let endpoint = ddb_bench_endpoint::endpoint_with_clock(config, clock.clone()).expect("config");
    let server = endpoint
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("bind");
    let client = client(&server.url()).await;
    Harness {
        server,
        client,
        clock,
    }
}

/// Configuration for `url`: one region, fake credentials, SDK retries off.
async fn sdk_config(url: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .endpoint_url(url)
        .retry_config(RetryConfig::disabled())
        .load()
        .await
}

pub async fn client(url: &str) -> Client {
    Client::new(&sdk_config(url).await)
}

/// An S3 client for `url` as ddb-pitr makes one for an emulator: path-style, fake credentials (SDK
/// retries off).
pub async fn s3_client(url: &str) -> aws_sdk_s3::Client {
    let conf = sdk_config(url).await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    )
}

pub type Item = HashMap<String, AttributeValue>;

pub fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

pub fn n(v: &str) -> AttributeValue {
    AttributeValue::N(v.to_owned())
}

pub fn item(attrs: &[(&str, AttributeValue)]) -> Item {
    attrs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

pub fn put(item: Item) -> WriteRequest {
    WriteRequest::builder()
        .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
        .build()
}

pub fn delete(key: Item) -> WriteRequest {
    WriteRequest::builder()
        .delete_request(DeleteRequest::builder().set_key(Some(key)).build().unwrap())
        .build()
}

pub async fn batch(
    h: &Harness,
    table: &str,
    requests: Vec<WriteRequest>,
) -> Result<BatchWriteItemOutput, SdkError<BatchWriteItemError>> {
    h.client
        .batch_write_item()
        .request_items(table, requests)
        .send()
        .await
}

/// The error code and message of a failed call, and its HTTP status.
pub fn service_error<E: ProvideErrorMetadata + std::fmt::Debug>(
    err: &SdkError<E>,
) -> (String, String, u16) {
    match err {
        SdkError::ServiceError(se) => (
            se.err().code().unwrap_or("").to_owned(),
            se.err().message().unwrap_or("").to_owned(),
            se.raw().status().as_u16(),
        ),
        other => panic!("expected a service error, got {other:?}"),
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`): status and body.
pub async fn raw(
    h: &Harness,
    method: &str,
    path: &str,
    target: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(h.server.addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\n",
        h.server.addr,
        body.len()
    );
    if let Some(t) = target {
        head.push_str(&format!("X-Amz-Target: DynamoDB_20120810.{t}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8(response).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// A raw BatchWriteItem: `(__type, message, status)` of the answer.
pub async fn raw_batch(h: &Harness, body: &str) -> (String, String, u16) {
    let (status, text) = raw(h, "POST", "/", Some("BatchWriteItem"), body.as_bytes()).await;
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON: {text}"));
    (
        v["__type"].as_str().unwrap_or("").to_owned(),
        v["message"].as_str().unwrap_or("").to_owned(),
        status,
    )
}
