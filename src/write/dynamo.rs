//! [`DynamoWriter`]: BatchWriteItem sent with the SDK's own parts, without its per-call orchestrator.
//!
//! A restore makes one call per 25 items, and the SDK's orchestrator (config layers, a dozen interceptors,
//! endpoint rules, retry classifiers) cost about as much CPU per call as checking the 25 items. So the writer
//! asks the client once for what a call needs, and then makes each call itself:
//!
//! - **Once per table** (`Probe`): one BatchWriteItem goes through the client with an interceptor that, just
//!   before signing, keeps the request the SDK built (URI and headers), the endpoint it resolved, its SigV4
//!   signing configuration and the client's runtime components, then ends the call before anything is sent.
//!   The endpoint (endpoint URL, FIPS, dual-stack, account-based endpoints, a table ARN's account) and
//!   headers are the SDK's.
//! - **Every call**: the credentials come from the client's identity cache, which refreshes them as the
//!   SDK does; the client's SigV4 signer signs the body that is sent; the client's HTTP connector sends it
//!   (same connection pool, TLS, connect and read timeouts); the attempt timeout is the client's, 60 s unless
//!   it has one. The answer is read here: `UnprocessedItems` stay the JSON DynamoDB sent, and an error is
//!   named by its `__type` as the SDK's JSON error parser names it.
//!
//! The SDK's retries are not used: [`super::retry::write_all`] counts and paces every attempt. The tests
//! below check that a request sent this way is byte for byte the one the SDK sends for the same body,
//! signature included.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_smithy_async::time::{SharedTimeSource, TimeSource};

use aws_runtime::auth::SigV4OperationSigningConfig;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::auth::{AuthScheme, AuthSchemeEndpointConfig, AuthSchemeId};
use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnector, HttpConnectorSettings};
use aws_smithy_runtime_api::client::http::{SharedHttpClient, SharedHttpConnector};
use aws_smithy_runtime_api::client::identity::{ResolveCachedIdentity, SharedIdentityResolver};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::{Headers, Request as HttpRequest};
use aws_smithy_types::DateTime;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use aws_smithy_types::config_bag::{ConfigBag, Layer};
use aws_smithy_types::date_time::Format;
use aws_smithy_types::endpoint::Endpoint;
use aws_smithy_types::timeout::TimeoutConfig;
use aws_types::SigningName;
use aws_types::region::SigningRegion;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::value::RawValue;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;

use super::{AttemptError, AttemptOutcome, BatchWriter};
use crate::aws::error::{THROTTLING_CODES, describe, is_transient};
use crate::item::wire::{RawWrite, batch_body};

/// DynamoDB signs with SigV4 only.
const SCHEME: AuthSchemeId = aws_runtime::auth::sigv4::SCHEME_ID;

/// Headers of the probe's request that belong to one call, not to every call.
const PER_CALL_HEADERS: [&str; 4] = [
    "content-length",
    "amz-sdk-invocation-id",
    "amz-sdk-request",
    "x-amzn-trace-id",
];

/// The longest one BatchWriteItem attempt may take when the client sets no attempt timeout.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

/// `table` or `index/<name>` for a throttled resource's ARN (`…:table/T` or `…:table/T/index/I`).
fn resource_label(arn: &str) -> String {
    match arn.split_once("/index/") {
        Some((_, index)) => format!("index/{index}"),
        None => "table".to_owned(),
    }
}

fn classify(err: &SdkError<BatchWriteItemError, HttpResponse>) -> AttemptError {
    let text = describe(err);
    if let SdkError::ServiceError(se) = err {
        let e = se.err();
        if e.is_provisioned_throughput_exceeded_exception()
            || e.is_request_limit_exceeded()
            || e.is_throttling_exception()
            || e.code().is_some_and(|c| THROTTLING_CODES.contains(&c))
        {
            let reasons = match e {
                BatchWriteItemError::ProvisionedThroughputExceededException(p) => {
                    p.throttling_reasons()
                }
                BatchWriteItemError::ThrottlingException(t) => t.throttling_reasons(),
                BatchWriteItemError::RequestLimitExceeded(r) => r.throttling_reasons(),
                _ => &[],
            };
            return AttemptError::Throttled {
                message: text,
                resources: reasons
                    .iter()
                    .filter_map(|r| r.resource())
                    .map(resource_label)
                    .collect(),
            };
        }
        // A conflicting write in another region of a global table: retrying is the documented remedy.
        if e.is_internal_server_error() || e.is_replicated_write_conflict_exception() {
            return AttemptError::Transient(text);
        }
    }
    if is_transient(err) {
        AttemptError::Transient(text)
    } else {
        AttemptError::Rejected(text)
    }
}

/// [`BatchWriter`] over DynamoDB's HTTP API with the parts of an SDK client (see the module's notes).
pub struct DynamoWriter {
    client: aws_sdk_dynamodb::Client,
    attempt_timeout: Duration,
    /// The service's clock minus this host's, in milliseconds, measured from the `Date` of the last
    /// answer when it is off by more than [`SKEW_THRESHOLD`] (0 otherwise). Requests are signed at the
    /// host's time plus this, as the SDK's own calls are.
    skew: Arc<AtomicI64>,
    /// By table: the endpoint can depend on it (a table ARN names the account of an account-based
    /// endpoint). A writer serves one or two tables.
    parts: Mutex<Vec<(String, Arc<Parts>)>>,
}

/// Below this, a difference between the service's `Date` and this host's clock is taken as the round trip
/// and the `Date` header's one-second resolution, not as a skew (the SDK's threshold too).
const SKEW_THRESHOLD: Duration = Duration::from_secs(4 * 60);

/// Error codes with which AWS rejects a signature made at the wrong time.
const SKEW_CODES: [&str; 4] = [
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "RequestTimeTooSkewed",
    "RequestExpired",
];

/// `server - local` in milliseconds when it is at least [`SKEW_THRESHOLD`], else 0.
fn measured_skew(server: SystemTime, local: SystemTime) -> i64 {
    let ms = match server.duration_since(local) {
        Ok(ahead) => ahead.as_millis() as i64,
        Err(behind) => -(behind.duration().as_millis() as i64),
    };
    if ms.unsigned_abs() >= SKEW_THRESHOLD.as_millis() as u64 {
        ms
    } else {
        0
    }
}

/// The host's clock corrected by the measured skew: what requests are signed with.
#[derive(Debug)]
struct SkewedClock {
    clock: SharedTimeSource,
    skew: Arc<AtomicI64>,
}

impl TimeSource for SkewedClock {
    fn now(&self) -> SystemTime {
        let now = self.clock.now();
        let skew = self.skew.load(Ordering::Relaxed);
        let shift = Duration::from_millis(skew.unsigned_abs());
        if skew >= 0 {
            now.checked_add(shift)
        } else {
            now.checked_sub(shift)
        }
        .unwrap_or(now)
    }
}

/// What every call takes from the client.
#[derive(Debug)]
struct Parts {
    /// The host's clock (the components sign with it corrected by the skew).
    clock: SharedTimeSource,
    components: RuntimeComponents,
    connector: SharedHttpConnector,
    identity: SharedIdentityResolver,
    endpoint: Endpoint,
    /// Holds the operation's signing configuration, which the signer reads.
    signing: ConfigBag,
    uri: String,
    headers: Headers,
}

impl DynamoWriter {
    /// A writer that sends through the parts of `client` (its retry configuration is not used).
    pub fn new(client: &aws_sdk_dynamodb::Client) -> Self {
        let attempt_timeout = client
            .config()
            .timeout_config()
            .and_then(TimeoutConfig::operation_attempt_timeout)
            .unwrap_or(ATTEMPT_TIMEOUT);
        let config = client
            .config()
            .to_builder()
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        DynamoWriter {
            client: aws_sdk_dynamodb::Client::from_conf(config),
            attempt_timeout,
            skew: Arc::default(),
            parts: Mutex::default(),
        }
    }

    /// The client's parts for writes to `table`, from one probe call the first time (again after a probe
    /// that failed).
    async fn parts(&self, table: &str) -> Result<Arc<Parts>, AttemptError> {
        let known = |parts: &[(String, Arc<Parts>)]| {
            parts
                .iter()
                .find(|(t, _)| t == table)
                .map(|(_, p)| p.clone())
        };
        if let Some(parts) = known(&self.parts.lock().expect("parts")) {
            return Ok(parts);
        }
        let probe = Probe::default();
        let result = self
            .client
            .batch_write_item()
            .request_items(table, Vec::new())
            .customize()
            .interceptor(probe.clone())
            .send()
            .await;
        let taken = probe.0.lock().expect("probe").take();
        let parts = match (taken, result) {
            (Some(Ok(parts)), _) => Arc::new(self.skewed(parts)?),
            (Some(Err(e)), _) => {
                return Err(AttemptError::Rejected(format!(
                    "BatchWriteItem cannot be sent with this client: {e}"
                )));
            }
            (None, Err(e)) => return Err(classify(&e)),
            (None, Ok(_)) => {
                return Err(AttemptError::Rejected(
                    "the BatchWriteItem probe was sent instead of stopped".into(),
                ));
            }
        };
        let mut known_parts = self.parts.lock().expect("parts");
        if let Some(first) = known(&known_parts) {
            return Ok(first);
        }
        known_parts.push((table.to_owned(), parts.clone()));
        Ok(parts)
    }

    /// `parts` with a clock that signs at the host's time corrected by the measured skew.
    fn skewed(&self, mut parts: Parts) -> Result<Parts, AttemptError> {
        parts.components = parts
            .components
            .to_builder()
            .with_time_source(Some(SkewedClock {
                clock: parts.clock.clone(),
                skew: self.skew.clone(),
            }))
            .build()
            .map_err(|e| AttemptError::Rejected(format!("BatchWriteItem client: {e}")))?;
        Ok(parts)
    }

    /// One BatchWriteItem call. A rejection of the signature's time (the host's clock is off) is sent
    /// once more at once, signed at the time the answer's `Date` gives.
    async fn call(&self, table: &str, body: bytes::Bytes) -> Result<AttemptOutcome, AttemptError> {
        let parts = self.parts(table).await?;
        let signed_with = self.skew.load(Ordering::Relaxed);
        let mut answer = self.send(&parts, body.clone()).await?;
        let mut code = answer.code();
        let skew_rejected = code.as_deref().is_some_and(|c| SKEW_CODES.contains(&c));
        if skew_rejected && self.skew.load(Ordering::Relaxed) != signed_with {
            tracing::warn!(
                skew_seconds = self.skew.load(Ordering::Relaxed) / 1000,
                "this host's clock differs from DynamoDB's; BatchWriteItem is signed again at DynamoDB's time"
            );
            answer = self.send(&parts, body).await?;
            code = answer.code();
        }
        if (200..300).contains(&answer.status) {
            parse_output(table, &answer.body)
        } else {
            Err(parse_error(
                answer.status,
                code.as_deref(),
                answer.request_id.as_deref(),
                &answer.body,
            ))
        }
    }

    /// Signs and sends one request, and records the clock skew its answer's `Date` shows.
    async fn send(&self, parts: &Parts, body: bytes::Bytes) -> Result<Answer, AttemptError> {
        let identity = parts
            .components
            .identity_cache()
            .resolve_cached_identity(parts.identity.clone(), &parts.components, &parts.signing)
            .await
            .map_err(|e| AttemptError::Transient(format!("credentials: {}", chain(&*e))))?;
        let mut request = HttpRequest::new(SdkBody::from(body.clone()));
        let invalid = |e: &dyn std::fmt::Display| {
            AttemptError::Rejected(format!("BatchWriteItem request: {e}"))
        };
        request.set_method("POST").map_err(|e| invalid(&e))?;
        request
            .set_uri(parts.uri.as_str())
            .map_err(|e| invalid(&e))?;
        *request.headers_mut() = parts.headers.clone();
        request
            .headers_mut()
            .insert("content-length", body.len().to_string());
        trace_header(&mut request);
        let scheme = parts
            .components
            .auth_scheme(SCHEME)
            .ok_or_else(|| AttemptError::Rejected("the client has no SigV4 auth scheme".into()))?;
        scheme
            .signer()
            .sign_http_request(
                &mut request,
                &identity,
                endpoint_auth_config(&parts.endpoint).map_err(AttemptError::Rejected)?,
                &parts.components,
                &parts.signing,
            )
            .map_err(|e| AttemptError::Rejected(format!("signing: {}", chain(&*e))))?;

        let exchange = async {
            let response =
                parts.connector.call(request).await.map_err(|e| {
                    AttemptError::Transient(format!("dispatch failure: {}", chain(&e)))
                })?;
            let status = response.status().as_u16();
            if let Some(server) = response
                .headers()
                .get("date")
                .and_then(|d| DateTime::from_str(d, Format::HttpDate).ok())
                .and_then(|d| SystemTime::try_from(d).ok())
            {
                self.skew
                    .store(measured_skew(server, parts.clock.now()), Ordering::Relaxed);
            }
            let request_id = response
                .headers()
                .get("x-amzn-requestid")
                .map(str::to_owned);
            let error_type = response
                .headers()
                .get("x-amzn-errortype")
                .map(str::to_owned);
            let body = ByteStream::new(response.into_body())
                .collect()
                .await
                .map_err(|e| AttemptError::Transient(format!("reading the answer: {}", chain(&e))))?
                .into_bytes();
            Ok(Answer {
                status,
                request_id,
                error_type,
                body,
            })
        };
        tokio::time::timeout(self.attempt_timeout, exchange)
            .await
            .map_err(|_| {
                AttemptError::Transient(format!(
                    "BatchWriteItem timed out after {:?}",
                    self.attempt_timeout
                ))
            })?
    }
}

impl BatchWriter for DynamoWriter {
    fn write_batch<'a>(
        &'a self,
        table: &'a str,
        requests: &'a [RawWrite],
    ) -> BoxFuture<'a, Result<AttemptOutcome, AttemptError>> {
        let body = bytes::Bytes::from(batch_body(table, requests));
        Box::pin(self.call(table, body))
    }
}

/// An error and its sources, `: `-separated.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    DisplayErrorContext(e).to_string()
}

/// In a Lambda function, the invocation's X-Ray trace id, as the SDK's recursion-detection interceptor
/// adds it (the probe's copy belonged to another invocation).
fn trace_header(request: &mut HttpRequest) {
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_none() {
        return;
    }
    if let Ok(trace) = std::env::var("_X_AMZN_TRACE_ID") {
        let _ = request.headers_mut().try_insert("x-amzn-trace-id", trace);
    }
}

/// The endpoint's configuration of the SigV4 scheme, found as the SDK finds it: typed auth schemes first,
/// then the `authSchemes` property; none is fine.
fn endpoint_auth_config(endpoint: &Endpoint) -> Result<AuthSchemeEndpointConfig<'_>, String> {
    let typed = endpoint.auth_schemes();
    if !typed.is_empty() {
        return typed
            .iter()
            .find(|s| s.name() == SCHEME.inner())
            .map(AuthSchemeEndpointConfig::from_typed)
            .ok_or_else(|| "the endpoint offers no SigV4 configuration".into());
    }
    use aws_smithy_types::Document;
    match endpoint.properties().get("authSchemes") {
        None => Ok(AuthSchemeEndpointConfig::empty()),
        Some(Document::Array(schemes)) => schemes
            .iter()
            .find(|s| match s {
                Document::Object(o) => {
                    matches!(o.get("name"), Some(Document::String(n)) if n == SCHEME.inner())
                }
                _ => false,
            })
            .map(AuthSchemeEndpointConfig::from)
            .ok_or_else(|| "the endpoint offers no SigV4 configuration".into()),
        Some(_) => Err("the endpoint's authSchemes is not a list".into()),
    }
}

/// Keeps the client's parts at the last step before signing, then ends the call.
#[derive(Debug, Default, Clone)]
struct Probe(Arc<Mutex<Option<Result<Parts, String>>>>);

/// The error that ends the probe call (it is never seen: the parts are taken instead).
const PROBE_DONE: &str = "probe done: the request is not sent";

impl Intercept for Probe {
    fn name(&self) -> &'static str {
        "DynamoWriterProbe"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let parts = probe_parts(context, components, cfg);
        *self.0.lock().expect("probe") = Some(parts);
        Err(PROBE_DONE.into())
    }
}

fn probe_parts(
    context: &BeforeTransmitInterceptorContextMut<'_>,
    components: &RuntimeComponents,
    cfg: &ConfigBag,
) -> Result<Parts, String> {
    let endpoint = cfg
        .load::<Endpoint>()
        .ok_or("the SDK resolved no endpoint")?
        .clone();
    let scheme = components
        .auth_scheme(SCHEME)
        .ok_or("the client has no SigV4 auth scheme")?;
    let identity = scheme
        .identity_resolver(components)
        .ok_or("the client has no credentials provider")?;
    let http: SharedHttpClient = components
        .http_client()
        .ok_or("the client has no HTTP client")?;
    let mut settings = HttpConnectorSettings::builder();
    if let Some(t) = cfg.load::<TimeoutConfig>() {
        settings.set_connect_timeout(t.connect_timeout());
        settings.set_read_timeout(t.read_timeout());
    }
    let connector = http.http_connector(&settings.build(), components);
    // What the SigV4 signer reads from the operation's configuration.
    let mut layer = Layer::new("DynamoWriter signing");
    layer.store_put(
        cfg.load::<SigV4OperationSigningConfig>()
            .ok_or("the client has no SigV4 signing configuration")?
            .clone(),
    );
    if let Some(name) = cfg.load::<SigningName>() {
        layer.store_put(name.clone());
    }
    if let Some(region) = cfg.load::<SigningRegion>() {
        layer.store_put(region.clone());
    }
    let request = context.request();
    let mut headers = request.headers().clone();
    for name in PER_CALL_HEADERS {
        headers.remove(name);
    }
    Ok(Parts {
        clock: components.time_source().unwrap_or_default(),
        components: components.clone(),
        connector,
        identity,
        endpoint,
        signing: ConfigBag::of_layers(vec![layer]),
        uri: request.uri().to_owned(),
        headers,
    })
}

/// A successful answer: `{"UnprocessedItems":{…},"ConsumedCapacity":[…]}`, either member possibly absent.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Output<'a> {
    #[serde(borrow)]
    unprocessed_items: Option<std::collections::HashMap<String, Vec<&'a RawValue>>>,
    consumed_capacity: Option<Vec<Capacity>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Capacity {
    capacity_units: Option<f64>,
    table: Option<Units>,
    global_secondary_indexes: Option<std::collections::BTreeMap<String, Units>>,
    local_secondary_indexes: Option<std::collections::BTreeMap<String, Units>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Units {
    capacity_units: Option<f64>,
}

#[derive(Deserialize)]
struct WriteRequest<'a> {
    #[serde(rename = "PutRequest", borrow)]
    put: Option<Put<'a>>,
    #[serde(rename = "DeleteRequest", borrow)]
    delete: Option<Delete<'a>>,
}

#[derive(Deserialize)]
struct Put<'a> {
    #[serde(rename = "Item", borrow)]
    item: &'a RawValue,
}

#[derive(Deserialize)]
struct Delete<'a> {
    #[serde(rename = "Key", borrow)]
    key: &'a RawValue,
}

fn parse_output(table: &str, body: &[u8]) -> Result<AttemptOutcome, AttemptError> {
    // A garbled success may or may not have been applied; sending the batch again is harmless.
    let garbled = |what: String| {
        AttemptError::Transient(format!(
            "BatchWriteItem answered 200 with a body that is not its output ({what}): {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ))
    };
    let out: Output = serde_json::from_slice(body).map_err(|e| garbled(e.to_string()))?;
    // AWS keys `UnprocessedItems` by "a table name or table ARN". Requests left under any other key were
    // not written either, and cannot be resent from here: the batch is sent again whole.
    let mut left = Vec::new();
    for (key, requests) in out.unprocessed_items.unwrap_or_default() {
        if same_table(&key, table) {
            left.extend(requests);
        } else if !requests.is_empty() {
            return Err(garbled(format!(
                "{} unprocessed requests under {key:?}, which is not the table {table:?} this batch wrote",
                requests.len()
            )));
        }
    }
    let unprocessed = left
        .into_iter()
        .map(|raw| {
            let request: WriteRequest =
                serde_json::from_str(raw.get()).map_err(|e| garbled(e.to_string()))?;
            match (request.put, request.delete) {
                (Some(put), None) => Ok(RawWrite::new(false, put.item.get())),
                (None, Some(delete)) => Ok(RawWrite::new(true, delete.key.get())),
                _ => Err(garbled(
                    "an unprocessed request without exactly one of PutRequest and DeleteRequest"
                        .into(),
                )),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let capacity = out.consumed_capacity.unwrap_or_default();
    let mut consumed_by = Vec::new();
    for c in &capacity {
        if let Some(units) = c.table.as_ref().and_then(|t| t.capacity_units) {
            consumed_by.push(("table".to_owned(), units));
        }
        let indexes = c.global_secondary_indexes.iter().flatten();
        for (name, units) in indexes.chain(c.local_secondary_indexes.iter().flatten()) {
            if let Some(units) = units.capacity_units {
                consumed_by.push((format!("index/{name}"), units));
            }
        }
    }
    Ok(AttemptOutcome {
        unprocessed,
        consumed_wcu: capacity.iter().filter_map(|c| c.capacity_units).sum(),
        consumed_by,
    })
}

/// Whether `key` of `UnprocessedItems` names the table a batch was sent to as `table`: the same string, or
/// one is the ARN (`arn:…:table/<name>`) of the other's name.
fn same_table(key: &str, table: &str) -> bool {
    let name = |s: &'_ str| -> Option<String> {
        let (head, name) = s.split_once(":table/")?;
        (head.starts_with("arn:") && !name.contains('/')).then(|| name.to_owned())
    };
    key == table || name(key).is_some_and(|n| n == table) || name(table).is_some_and(|n| n == key)
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(rename = "__type")]
    kind: Option<String>,
    code: Option<String>,
    #[serde(alias = "Message", alias = "errorMessage")]
    message: Option<String>,
    #[serde(rename = "ThrottlingReasons")]
    reasons: Option<Vec<ThrottlingReason>>,
}

#[derive(Deserialize)]
struct ThrottlingReason {
    resource: Option<String>,
}

/// `com.amazonaws.dynamodb.v20120810#ValidationException:http://…` → `ValidationException`.
fn sanitize_code(code: &str) -> &str {
    let code = code.split(':').next().unwrap_or(code);
    code.rsplit('#').next().unwrap_or(code)
}

/// One HTTP answer to BatchWriteItem.
struct Answer {
    status: u16,
    request_id: Option<String>,
    /// The `x-amzn-errortype` header.
    error_type: Option<String>,
    body: bytes::Bytes,
}

impl Answer {
    /// The error code: the `x-amzn-errortype` header, else the body's `code` or `__type`; `None` for a
    /// success.
    fn code(&self) -> Option<String> {
        if (200..300).contains(&self.status) {
            return None;
        }
        let parsed: ErrorBody = serde_json::from_slice(&self.body).unwrap_or_default();
        self.error_type
            .as_deref()
            .or(parsed.code.as_deref())
            .or(parsed.kind.as_deref())
            .map(sanitize_code)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
    }
}

/// An error answer, classified as [`classify`] classifies the SDK's errors and worded as
/// [`describe`] words them.
fn parse_error(
    status: u16,
    code: Option<&str>,
    request_id: Option<&str>,
    body: &[u8],
) -> AttemptError {
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let mut text = match (code, parsed.message.as_deref()) {
        (Some(code), Some(msg)) => format!("{code}: {msg} (HTTP {status})"),
        (Some(code), None) => format!("{code} (HTTP {status})"),
        (None, _) => format!(
            "unhandled error (HTTP {status}): {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ),
    };
    if let Some(id) = request_id {
        text.push_str(&format!(" [request id {id}]"));
    }
    if code.is_some_and(|c| THROTTLING_CODES.contains(&c)) {
        return AttemptError::Throttled {
            message: text,
            resources: parsed
                .reasons
                .into_iter()
                .flatten()
                .filter_map(|r| r.resource)
                .map(|arn| resource_label(&arn))
                .collect(),
        };
    }
    let retryable_code = matches!(
        code,
        Some("InternalServerError" | "ReplicatedWriteConflictException")
    );
    if retryable_code || status >= 500 || status == 429 {
        AttemptError::Transient(text)
    } else {
        AttemptError::Rejected(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::http::{Canned, dynamodb as client};
    use crate::write::retry::{RetryPolicy, write_all};
    use crate::write::stats::{ResourceUse, WriteStats};

    fn writes(n: usize, tag: &str) -> Vec<RawWrite> {
        (0..n)
            .map(|i| {
                RawWrite::new(
                    i % 3 == 2,
                    &format!(r#"{{"pk":{{"S":"{tag}\"{i}"}},"n":{{"N":"{i}"}}}}"#),
                )
            })
            .collect()
    }

    /// For the reference request: puts `body` in place of the one the SDK serialised.
    #[derive(Debug)]
    struct SdkWithBody(bytes::Bytes);

    impl Intercept for SdkWithBody {
        fn name(&self) -> &'static str {
            "SdkWithBody"
        }

        fn modify_before_signing(
            &self,
            context: &mut BeforeTransmitInterceptorContextMut<'_>,
            _: &RuntimeComponents,
            _: &mut ConfigBag,
        ) -> Result<(), BoxError> {
            let request = context.request_mut();
            request
                .headers_mut()
                .insert("content-length", self.0.len().to_string());
            *request.body_mut() = SdkBody::from(self.0.clone());
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_request_is_the_one_the_sdk_sends_for_the_same_body_signature_included() {
        let http = Canned::answering(&[(200, "{}"); 4]);
        let client = client(&http);
        let writer = DynamoWriter::new(&client);
        let table = "t\"able";
        let (first, second) = (writes(25, "a"), writes(25, "b"));

        let body = bytes::Bytes::from(batch_body(table, &first));
        client
            .batch_write_item()
            .request_items(table, Vec::new())
            .customize()
            .interceptor(SdkWithBody(body.clone()))
            .send()
            .await
            .expect("the SDK's call");
        for batch in [&first, &second, &first] {
            let out = writer
                .write_batch(table, batch)
                .await
                .expect("answered 200");
            assert!(out.unprocessed.is_empty());
        }

        let mut sent = http.sent();
        assert_eq!(sent.len(), 4, "the probe sent nothing");
        // The SDK's retry bookkeeping, added after signing, which the writer does not send.
        let bookkeeping = ["amz-sdk-invocation-id", "amz-sdk-request"];
        sent[0]
            .2
            .retain(|(k, _)| !bookkeeping.contains(&k.as_str()));
        assert_eq!(sent[0], sent[1], "the SDK's request and the writer's");
        assert_eq!(sent[1].3.as_bytes(), body);
        assert_eq!(sent[1].0, "POST");
        let header = |i: usize, name: &str| {
            sent[i]
                .2
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no {name} in {:?}", sent[i].2))
        };
        assert_eq!(
            header(1, "x-amz-target"),
            "DynamoDB_20120810.BatchWriteItem"
        );
        assert_eq!(header(1, "content-length"), body.len().to_string());
        assert!(header(1, "authorization").starts_with("AWS4-HMAC-SHA256 "));
        // Another body, another signature; the same body at the same (fixed) time, the same one.
        assert_ne!(header(1, "authorization"), header(2, "authorization"));
        assert_eq!(sent[1], sent[3]);
    }

    /// The endpoint is the SDK's for each table: a table ARN's account picks an account-based endpoint.
    #[tokio::test]
    async fn each_table_gets_the_endpoint_the_sdk_resolves_for_it() {
        let http = Canned::answering(&[(200, "{}"); 3]);
        let mut builder = aws_sdk_dynamodb::Config::builder()
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .http_client(http.clone());
        builder.apply_test_defaults();
        let writer = DynamoWriter::new(&aws_sdk_dynamodb::Client::from_conf(builder.build()));
        let arn = "arn:aws:dynamodb:us-east-1:111122223333:table/t";
        for table in [arn, "t", arn] {
            writer.write_batch(table, &writes(1, "x")).await.unwrap();
        }
        let uris: Vec<String> = http.sent().into_iter().map(|s| s.1).collect();
        assert_eq!(
            uris,
            [
                "https://111122223333.ddb.us-east-1.amazonaws.com/",
                "https://dynamodb.us-east-1.amazonaws.com/",
                "https://111122223333.ddb.us-east-1.amazonaws.com/",
            ]
        );
        assert_eq!(writer.parts.lock().unwrap().len(), 2, "one probe per table");
    }

    #[tokio::test]
    async fn answers_are_parsed_and_classified() {
        let http = Canned::default();
        http.answer(
            400,
            &[("x-amzn-requestid", "R1")],
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"slow down","ThrottlingReasons":[{"reason":"IndexWriteProvisionedThroughputExceeded","resource":"arn:aws:dynamodb:us-east-1:123456789012:table/t/index/g"}]}"#,
        );
        http.answer(
            400,
            &[(
                "x-amzn-errortype",
                "ThrottlingException:http://internal.amazon.com/",
            )],
            "",
        );
        http.answer(500, &[], "{}");
        http.answer(
            400,
            &[],
            r#"{"__type":"com.amazon.coral.validate#ValidationException","message":"Item size has exceeded the maximum allowed size"}"#,
        );
        http.answer(
            400,
            &[],
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ReplicatedWriteConflictException","Message":"conflict"}"#,
        );
        http.answer(
            200,
            &[],
            r#"{"UnprocessedItems":{"other":[],"t":[{"PutRequest":{"Item":{"pk":{"S":"a"}}}},{"DeleteRequest":{"Key":{"pk":{"S":"b"}}}}]},"ConsumedCapacity":[{"TableName":"t","CapacityUnits":22.0,"Table":{"CapacityUnits":12.0},"GlobalSecondaryIndexes":{"g":{"CapacityUnits":10.0}}}]}"#,
        );
        http.answer(200, &[], "<html>proxy</html>");
        http.answer(
            200,
            &[],
            r#"{"UnprocessedItems":{"t":[{"PutRequest":{"Item":{}},"DeleteRequest":{"Key":{}}}]}}"#,
        );
        http.answer(
            200,
            &[],
            r#"{"UnprocessedItems":null,"ConsumedCapacity":null}"#,
        );
        let writer = DynamoWriter::new(&client(&http));
        let mut results = Vec::new();
        for _ in 0..9 {
            results.push(writer.write_batch("t", &writes(25, "x")).await);
        }
        assert_eq!(
            http.sent().len(),
            9,
            "one request per answer: no SDK retries"
        );

        match &results[0] {
            Err(AttemptError::Throttled { message, resources }) => {
                assert!(
                    message
                        .contains("ProvisionedThroughputExceededException: slow down (HTTP 400)"),
                    "{message}"
                );
                assert!(message.contains("R1"), "{message}");
                assert_eq!(resources, &["index/g"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(&results[1], Err(AttemptError::Throttled { message, .. }) if message.starts_with("ThrottlingException (HTTP 400)")),
            "{:?}",
            results[1]
        );
        assert!(
            matches!(&results[2], Err(AttemptError::Transient(m)) if m.contains("HTTP 500")),
            "{:?}",
            results[2]
        );
        assert!(
            matches!(&results[3], Err(AttemptError::Rejected(m)) if m.starts_with("ValidationException: Item size has exceeded")),
            "{:?}",
            results[3]
        );
        assert!(
            matches!(&results[4], Err(AttemptError::Transient(m)) if m.starts_with("ReplicatedWriteConflictException: conflict")),
            "{:?}",
            results[4]
        );
        let out = results[5].as_ref().expect("a partial success");
        assert_eq!(
            out.unprocessed,
            vec![
                RawWrite::new(false, r#"{"pk":{"S":"a"}}"#),
                RawWrite::new(true, r#"{"pk":{"S":"b"}}"#)
            ]
        );
        assert_eq!(out.consumed_wcu, 22.0);
        assert_eq!(
            out.consumed_by,
            vec![("table".to_owned(), 12.0), ("index/g".to_owned(), 10.0)]
        );
        // A garbled success is sent again (puts and deletes are idempotent), never taken as done.
        for garbled in &results[6..8] {
            assert!(
                matches!(garbled, Err(AttemptError::Transient(m)) if m.contains("not its output")),
                "{garbled:?}"
            );
        }
        let out = results[8].as_ref().expect("nulls are absent members");
        assert!(out.unprocessed.is_empty() && out.consumed_wcu == 0.0);
    }

    /// A host whose clock is 10 minutes behind DynamoDB's: the signature is rejected, the answer's `Date`
    /// gives the skew, and the batch is signed again at DynamoDB's time and sent once more; later calls are
    /// signed at the corrected time from the start, and a rejection with no new skew is not resent.
    #[tokio::test]
    async fn a_signature_rejected_for_clock_skew_is_sent_again_at_the_services_time() {
        // The test clock is 2009-02-13T23:31:30Z; DynamoDB says 23:41:30.
        const LATER: &str = "Fri, 13 Feb 2009 23:41:30 GMT";
        let skewed = r#"{"__type":"com.amazon.coral.service#InvalidSignatureException","message":"Signature expired: 20090213T233130Z is now earlier than 20090213T233630Z (20090213T234130Z - 5 min.)"}"#;
        let http = Canned::default();
        http.answer(400, &[("date", LATER)], skewed);
        http.answer(200, &[("date", LATER)], "{}");
        http.answer(200, &[], "{}");
        http.answer(400, &[("date", LATER)], skewed);
        let writer = DynamoWriter::new(&client(&http));
        writer.write_batch("t", &writes(2, "x")).await.unwrap();
        writer.write_batch("t", &writes(2, "x")).await.unwrap();
        let rejected = writer.write_batch("t", &writes(2, "x")).await;
        assert!(
            matches!(&rejected, Err(AttemptError::Rejected(m)) if m.starts_with("InvalidSignatureException")),
            "{rejected:?}"
        );
        let dates: Vec<String> = http
            .sent()
            .iter()
            .map(|(_, _, headers, _)| {
                headers
                    .iter()
                    .find(|(k, _)| k == "x-amz-date")
                    .map(|(_, v)| v.clone())
                    .unwrap()
            })
            .collect();
        assert_eq!(
            dates,
            [
                "20090213T233130Z",
                "20090213T234130Z",
                "20090213T234130Z",
                "20090213T234130Z"
            ]
        );
        let local = SystemTime::UNIX_EPOCH + Duration::from_secs(1_234_567_890);
        assert_eq!(
            measured_skew(local + Duration::from_secs(600), local),
            600_000
        );
        assert_eq!(
            measured_skew(local - Duration::from_secs(300), local),
            -300_000
        );
        assert_eq!(measured_skew(local + Duration::from_secs(90), local), 0);
    }

    /// UnprocessedItems under the table's ARN are resent like those under its name; requests under any
    /// other key make the attempt fail (the batch is sent again whole), never count as written.
    #[tokio::test]
    async fn unprocessed_items_are_matched_by_table_name_or_arn() {
        const ARN: &str = "arn:aws:dynamodb:eu-north-1:123456789012:table/t";
        let http = Canned::answering(&[
            (
                200,
                r#"{"UnprocessedItems":{"arn:aws:dynamodb:eu-north-1:123456789012:table/t":[{"PutRequest":{"Item":{"pk":{"S":"a"}}}}]}}"#,
            ),
            (
                200,
                r#"{"UnprocessedItems":{"t":[{"DeleteRequest":{"Key":{"pk":{"S":"b"}}}}]}}"#,
            ),
            (
                200,
                r#"{"UnprocessedItems":{"t2":[{"PutRequest":{"Item":{"pk":{"S":"a"}}}}]}}"#,
            ),
            (
                200,
                r#"{"UnprocessedItems":{"arn:aws:dynamodb:eu-north-1:123456789012:table/t2":[{"PutRequest":{"Item":{"pk":{"S":"a"}}}}]}}"#,
            ),
        ]);
        let writer = DynamoWriter::new(&client(&http));
        let by_arn = writer.write_batch("t", &writes(3, "x")).await.unwrap();
        assert_eq!(
            by_arn.unprocessed,
            vec![RawWrite::new(false, r#"{"pk":{"S":"a"}}"#)]
        );
        let by_name = writer.write_batch(ARN, &writes(3, "x")).await.unwrap();
        assert_eq!(
            by_name.unprocessed,
            vec![RawWrite::new(true, r#"{"pk":{"S":"b"}}"#)]
        );
        for table in ["t", ARN] {
            let other = writer.write_batch(table, &writes(3, "x")).await;
            assert!(
                matches!(&other, Err(AttemptError::Transient(m)) if m.contains("1 unprocessed requests under") && m.contains("t2")),
                "{other:?}"
            );
        }
        assert!(same_table("t", "t") && same_table(ARN, "t") && same_table("t", ARN));
        assert!(!same_table("t", "t2") && !same_table(ARN, "t2") && !same_table("table/t", "t"));
    }

    /// INDEXES detail and ThrottlingReasons reach the per-resource statistics of the report.
    #[tokio::test]
    async fn consumption_and_throttling_are_attributed_to_the_table_and_its_indexes() {
        let http = Canned::answering(&[
            (
                400,
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"index g is throttled","ThrottlingReasons":[{"reason":"IndexWriteProvisionedThroughputExceeded","resource":"arn:aws:dynamodb:us-east-1:123456789012:table/t/index/g"}]}"#,
            ),
            (
                200,
                r#"{"ConsumedCapacity":[{"TableName":"t","CapacityUnits":50.0,"Table":{"CapacityUnits":25.0},"GlobalSecondaryIndexes":{"g":{"CapacityUnits":25.0}}}]}"#,
            ),
        ]);
        let stats = WriteStats::default();
        let policy = RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(2),
        };
        let writer = DynamoWriter::new(&client(&http));
        write_all(&writer, "t", writes(25, "x"), &policy, &stats)
            .await
            .unwrap();
        let resources = stats.resources();
        assert_eq!(
            resources["index/g"],
            ResourceUse {
                consumed_wcu: 25.0,
                throttled_requests: 1
            }
        );
        assert_eq!(
            resources["table"],
            ResourceUse {
                consumed_wcu: 25.0,
                throttled_requests: 0
            }
        );
        assert_eq!(stats.snapshot().consumed_wcu, 50.0);
        assert_eq!(stats.snapshot().throttled_requests, 1);
    }

    #[tokio::test]
    async fn a_refused_connection_is_transient() {
        let mut builder = aws_sdk_dynamodb::Config::builder()
            .region(aws_sdk_dynamodb::config::Region::new("eu-north-1"))
            // Nothing listens on the discard port.
            .endpoint_url("http://127.0.0.1:9");
        builder.apply_test_defaults();
        let writer = DynamoWriter::new(&aws_sdk_dynamodb::Client::from_conf(builder.build()));
        let e = writer.write_batch("t", &writes(2, "x")).await.unwrap_err();
        assert!(
            matches!(&e, AttemptError::Transient(m) if m.starts_with("dispatch failure")),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn without_credentials_nothing_is_sent_and_the_error_says_why() {
        let http = Canned::default();
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("eu-north-1"))
            .endpoint_url("http://127.0.0.1:9")
            .http_client(http.clone())
            .build();
        let writer = DynamoWriter::new(&aws_sdk_dynamodb::Client::from_conf(config));
        for _ in 0..2 {
            let e = writer.write_batch("t", &writes(2, "x")).await.unwrap_err();
            let text = format!("{e:?}");
            assert!(
                text.to_lowercase().contains("credentials") || text.contains("identity"),
                "{text}"
            );
        }
        assert!(http.sent().is_empty());
    }
}
