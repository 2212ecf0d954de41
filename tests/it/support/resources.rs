//! Uniquely named S3 buckets and DynamoDB tables that delete themselves on `Drop`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TableStatus,
};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use futures::{StreamExt, TryStreamExt};

use super::{run_cleanup, unique_name};

/// Concurrent PutObject calls in [`TestBucket::upload_dir`].
const UPLOAD_CONCURRENCY: usize = 8;

/// An S3 bucket that exists for the life of the value; `Drop` empties and deletes it.
pub struct TestBucket {
    pub name: String,
    client: aws_sdk_s3::Client,
}

impl TestBucket {
    pub async fn create(s3: &aws_sdk_s3::Client, prefix: &str) -> TestBucket {
        let name = unique_name(prefix);
        s3.create_bucket()
            .bucket(&name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateBucket {name}: {e:?}"));
        TestBucket {
            name,
            client: s3.clone(),
        }
    }

    /// A bucket in `region` (its LocationConstraint), created with `s3`, a client of that region.
    pub async fn create_in(s3: &aws_sdk_s3::Client, prefix: &str, region: &str) -> TestBucket {
        use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
        let name = unique_name(prefix);
        s3.create_bucket()
            .bucket(&name)
            .create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region))
                    .build(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateBucket {name} in {region}: {e:?}"));
        TestBucket {
            name,
            client: s3.clone(),
        }
    }

    /// `s3://<bucket>/<key_prefix>` with a trailing `/` (or just `s3://<bucket>/`).
    pub fn url(&self, key_prefix: &str) -> String {
        format!("s3://{}/{}", self.name, key_prefix)
    }

    /// Uploads every file under `local_root`, recursively, keyed by its path relative to
    /// `local_root` (with `/` separators), under `key_prefix` when that is not empty. Data files
    /// (`.json.gz`) are uploaded as DynamoDB uploads them ([`TestBucket::put_as_dynamodb`]), so they
    /// have the ETags their manifests list. Returns the keys, sorted.
    pub async fn upload_dir(&self, local_root: &Path, key_prefix: &str) -> Vec<String> {
        let mut files = Vec::new();
        collect_files(local_root, &mut files);
        files.sort();
        let prefix = key_prefix.trim_end_matches('/');
        let uploads = files.into_iter().map(|path| {
            let rel = path
                .strip_prefix(local_root)
                .expect("under root")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            let key = if prefix.is_empty() {
                rel
            } else {
                format!("{prefix}/{rel}")
            };
            async move {
                let bytes = std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
                if key.ends_with(".json.gz") {
                    self.put_as_dynamodb(&key, bytes).await;
                } else {
                    self.put(&key, bytes).await;
                }
                Ok::<_, String>(key)
            }
        });
        let mut keys: Vec<String> = futures::stream::iter(uploads)
            .buffer_unordered(UPLOAD_CONCURRENCY)
            .try_collect()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        keys.sort();
        keys
    }

    /// Uploads `bytes` as one part of a multipart upload, as DynamoDB uploads export data files: S3 (and
    /// moto) give the object the ETag `hex(MD5(MD5(bytes)))-1`, which manifest-files.json lists. A plain
    /// [`TestBucket::put`] gives another ETag, as a copy does.
    pub async fn put_as_dynamodb(&self, key: &str, bytes: Vec<u8>) {
        let fail = |op: &str, e: String| -> ! { panic!("{op} s3://{}/{key}: {e}", self.name) };
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| fail("CreateMultipartUpload", format!("{e:?}")));
        let id = upload.upload_id().expect("upload id");
        let part = self
            .client
            .upload_part()
            .bucket(&self.name)
            .key(key)
            .upload_id(id)
            .part_number(1)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .unwrap_or_else(|e| fail("UploadPart", format!("{e:?}")));
        let parts = aws_sdk_s3::types::CompletedMultipartUpload::builder()
            .parts(
                aws_sdk_s3::types::CompletedPart::builder()
                    .part_number(1)
                    .set_e_tag(part.e_tag().map(str::to_owned))
                    .build(),
            )
            .build();
        self.client
            .complete_multipart_upload()
            .bucket(&self.name)
            .key(key)
            .upload_id(id)
            .multipart_upload(parts)
            .send()
            .await
            .unwrap_or_else(|e| fail("CompleteMultipartUpload", format!("{e:?}")));
    }

    /// The object's ETag, without quotes.
    pub async fn etag(&self, key: &str) -> String {
        let head = self
            .client
            .head_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("HeadObject s3://{}/{key}: {e:?}", self.name));
        head.e_tag().expect("an ETag").trim_matches('"').to_owned()
    }

    pub async fn put(&self, key: &str, bytes: impl Into<Vec<u8>>) {
        self.client
            .put_object()
            .bucket(&self.name)
            .key(key)
            .body(ByteStream::from(bytes.into()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutObject s3://{}/{key}: {e:?}", self.name));
    }

    pub async fn delete(&self, key: &str) {
        self.client
            .delete_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DeleteObject s3://{}/{key}: {e:?}", self.name));
    }

    /// The object's bytes, or `None` if there is no such key.
    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let out = match self
            .client
            .get_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|se| se.is_no_such_key()) => return None,
            Err(e) => panic!("GetObject s3://{}/{key}: {e:?}", self.name),
        };
        let bytes = out
            .body
            .collect()
            .await
            .unwrap_or_else(|e| panic!("reading s3://{}/{key}: {e}", self.name));
        Some(bytes.into_bytes().to_vec())
    }

    /// All keys in the bucket, sorted (S3 lists in key order).
    pub async fn keys(&self) -> Vec<String> {
        list_keys(&self.client, &self.name)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading dir {}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("reading dir {}: {e}", dir.display()));
        let path = entry.path();
        let ft = entry.file_type().expect("file type");
        if ft.is_dir() || (ft.is_symlink() && path.is_dir()) {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

async fn list_keys(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<Vec<String>, String> {
    let mut keys = Vec::new();
    let mut pages = s3.list_objects_v2().bucket(bucket).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| format!("ListObjectsV2 {bucket}: {e:?}"))?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
    }
    Ok(keys)
}

async fn empty_and_delete_bucket(s3: aws_sdk_s3::Client, bucket: String) -> Result<(), String> {
    let keys = list_keys(&s3, &bucket).await?;
    // DeleteObjects takes at most 1000 keys per request.
    for chunk in keys.chunks(1000) {
        let objects = chunk
            .iter()
            .map(|k| ObjectIdentifier::builder().key(k).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| e.to_string())?;
        let out = s3
            .delete_objects()
            .bucket(&bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| format!("DeleteObjects {bucket}: {e:?}"))?;
        if let Some(err) = out.errors().first() {
            return Err(format!("DeleteObjects {bucket}: {err:?}"));
        }
    }
    s3.delete_bucket()
        .bucket(&bucket)
        .send()
        .await
        .map_err(|e| format!("DeleteBucket {bucket}: {e:?}"))?;
    Ok(())
}

impl Drop for TestBucket {
    fn drop(&mut self) {
        let conf = self.client.config().clone();
        let bucket = self.name.clone();
        run_cleanup(format!("bucket {bucket}"), move || {
            // A new client, so its connection pool lives in the cleanup runtime.
            empty_and_delete_bucket(aws_sdk_s3::Client::from_conf(conf), bucket)
        });
    }
}

/// A DynamoDB table that exists for the life of the value; `Drop` deletes it.
pub struct TestTable {
    pub name: String,
    client: aws_sdk_dynamodb::Client,
}

impl TestTable {
    /// Creates an on-demand table with the given key schema and waits until it is ACTIVE.
    pub async fn create(
        ddb: &aws_sdk_dynamodb::Client,
        prefix: &str,
        pk: (&str, ScalarAttributeType),
        sk: Option<(&str, ScalarAttributeType)>,
    ) -> TestTable {
        let name = unique_name(prefix);
        let mut req = ddb
            .create_table()
            .table_name(&name)
            .billing_mode(BillingMode::PayPerRequest);
        let keys = std::iter::once((pk, KeyType::Hash)).chain(sk.map(|sk| (sk, KeyType::Range)));
        for ((attr, ty), key_type) in keys {
            req = req
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(attr)
                        .attribute_type(ty)
                        .build()
                        .expect("attribute definition"),
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name(attr)
                        .key_type(key_type)
                        .build()
                        .expect("key schema element"),
                );
        }
        req.send()
            .await
            .unwrap_or_else(|e| panic!("CreateTable {name}: {e:?}"));
        let table = TestTable {
            name,
            client: ddb.clone(),
        };
        table.wait_active().await;
        table
    }

    /// Creates a table from a CreateTable request that `build` completes (the name is set), and waits until
    /// it is ACTIVE.
    pub async fn create_with(
        ddb: &aws_sdk_dynamodb::Client,
        prefix: &str,
        build: impl FnOnce(
            aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder,
        )
            -> aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder,
    ) -> TestTable {
        let name = unique_name(prefix);
        build(ddb.create_table().table_name(&name))
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateTable {name}: {e:?}"));
        let table = TestTable {
            name,
            client: ddb.clone(),
        };
        table.wait_active().await;
        table
    }

    /// Deletes the items with these string `pk`/`sk` keys.
    pub async fn delete_keys(&self, keys: &[(&str, &str)]) {
        for (pk, sk) in keys {
            self.client
                .delete_item()
                .table_name(&self.name)
                .key("pk", AttributeValue::S((*pk).to_owned()))
                .key("sk", AttributeValue::S((*sk).to_owned()))
                .send()
                .await
                .unwrap_or_else(|e| panic!("DeleteItem {}: {e:?}", self.name));
        }
    }

    async fn wait_active(&self) {
        // moto creates tables ACTIVE at once; real DynamoDB takes seconds. Bounded poll.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let out = self
                .client
                .describe_table()
                .table_name(&self.name)
                .send()
                .await
                .unwrap_or_else(|e| panic!("DescribeTable {}: {e:?}", self.name));
            let status = out.table().and_then(|t| t.table_status()).cloned();
            if status == Some(TableStatus::Active) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "table {} not ACTIVE after 120s (status {status:?})",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn scan(&self) -> Vec<HashMap<String, AttributeValue>> {
        scan_all(&self.client, &self.name).await
    }
}

impl Drop for TestTable {
    fn drop(&mut self) {
        let conf = self.client.config().clone();
        let table = self.name.clone();
        run_cleanup(format!("table {table}"), move || async move {
            aws_sdk_dynamodb::Client::from_conf(conf)
                .delete_table()
                .table_name(&table)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("DeleteTable {table}: {e:?}"))
        });
    }
}

/// Every item in `table` (follows `LastEvaluatedKey` across pages).
pub async fn scan_all(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Vec<HashMap<String, AttributeValue>> {
    let mut items = Vec::new();
    let mut start_key = None;
    loop {
        let out = ddb
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start_key)
            .consistent_read(true)
            .send()
            .await
            .unwrap_or_else(|e| panic!("Scan {table}: {e:?}"));
        items.extend(out.items.unwrap_or_default());
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start_key = Some(k),
            _ => return items,
        }
    }
}

/// An SQS queue with a dead-letter queue, as the SAM template creates them; `Drop` deletes both.
pub struct TestQueue {
    pub url: String,
    pub arn: String,
    pub dlq_url: String,
    client: aws_sdk_sqs::Client,
}

impl TestQueue {
    /// Deletes `messages` except those whose message id is in `failed`, as Lambda's event source mapping
    /// does after a batch response with `batchItemFailures`.
    pub async fn delete_all_but(&self, messages: &[aws_sdk_sqs::types::Message], failed: &[&str]) {
        let entries: Vec<aws_sdk_sqs::types::DeleteMessageBatchRequestEntry> = messages
            .iter()
            .filter(|m| !failed.contains(&m.message_id().unwrap_or_default()))
            .enumerate()
            .map(|(i, m)| {
                aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .build()
                    .unwrap()
            })
            .collect();
        if !entries.is_empty() {
            let out = self
                .client
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .expect("DeleteMessageBatch");
            assert!(out.failed().is_empty(), "{:?}", out.failed());
        }
    }

    /// `visibility`: the queue's visibility timeout; `max_receives`: receives before a message moves to
    /// the DLQ.
    pub async fn create(
        sqs: &aws_sdk_sqs::Client,
        prefix: &str,
        visibility: Duration,
        max_receives: u32,
    ) -> TestQueue {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let name = unique_name(prefix);
        let dlq_url = sqs
            .create_queue()
            .queue_name(format!("{name}-dlq"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateQueue {name}-dlq: {e:?}"))
            .queue_url
            .expect("queue url");
        let dlq_arn = queue_arn(sqs, &dlq_url).await;
        let url = sqs
            .create_queue()
            .queue_name(&name)
            .attributes(A::VisibilityTimeout, visibility.as_secs().to_string())
            .attributes(
                A::RedrivePolicy,
                format!(
                    r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"{max_receives}"}}"#
                ),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateQueue {name}: {e:?}"))
            .queue_url
            .expect("queue url");
        let arn = queue_arn(sqs, &url).await;
        TestQueue {
            url,
            arn,
            dlq_url,
            client: sqs.clone(),
        }
    }

    /// Messages on the queue, visible or in flight (approximate, as SQS reports them).
    pub async fn depth(&self, url: &str) -> u64 {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetQueueAttributes {url}: {e:?}"));
        let attrs = out.attributes.unwrap_or_default();
        [
            A::ApproximateNumberOfMessages,
            A::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .map(|a| {
            attrs
                .get(a)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
    }
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetQueueAttributes {url}: {e:?}"))
        .attributes
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .expect("queue ARN")
}

impl Drop for TestQueue {
    fn drop(&mut self) {
        let conf = self.client.config().clone();
        let urls = [self.url.clone(), self.dlq_url.clone()];
        run_cleanup(format!("queue {}", self.url), move || async move {
            let sqs = aws_sdk_sqs::Client::from_conf(conf);
            for url in urls {
                sqs.delete_queue()
                    .queue_url(&url)
                    .send()
                    .await
                    .map_err(|e| format!("DeleteQueue {url}: {e:?}"))?;
            }
            Ok(())
        });
    }
}
