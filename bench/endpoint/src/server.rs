//! HTTP/1.1 on hyper: routing, body limits, fault injection, and the accept loop.
//!
//! Routes: `POST /` (the DynamoDB API), `GET /stats`, `GET /items?table=NAME` (`--store`), `POST /reset`,
//! and with an S3 root every other path below `/` (S3 path-style requests, [`crate::s3`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

use crate::engine::{Fault, State, Stats};
use crate::protocol::{
    self, ApiError, Body, CONTROL_ROUTES, ErrorCode, Operation, next_request_id,
};
use crate::s3::S3;

/// Returned by the service to make hyper close the connection without a response.
#[derive(Debug)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped (fault injection)")
    }
}

impl std::error::Error for DropConnection {}

/// A cheap handle on one endpoint's state.
#[derive(Clone)]
pub struct Endpoint {
    state: Arc<State>,
    s3: Option<Arc<S3>>,
}

impl Endpoint {
    /// An endpoint for `state`'s tables and, with `s3`, its buckets.
    pub fn new(state: State, s3: Option<S3>) -> Self {
        Endpoint {
            state: Arc::new(state),
            s3: s3.map(Arc::new),
        }
    }

    pub fn stats(&self) -> Stats {
        self.state.stats()
    }

    pub fn reset(&self) {
        self.state.reset()
    }

    pub fn items_jsonl(&self, table: &str) -> Option<String> {
        self.state.items_jsonl(table)
    }

    /// Serves connections from `listener` until `shutdown` completes; open connections are then closed.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    self.state.counters.connections.fetch_add(1, Ordering::Relaxed);
                    let (state, s3) = (self.state.clone(), self.s3.clone());
                    connections.spawn(async move {
                        let service =
                            service_fn(move |req| handle(state.clone(), s3.clone(), req));
                        if let Err(e) = http1::Builder::new()
                            .keep_alive(true)
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                        {
                            tracing::debug!(%peer, error = %e, "connection ended");
                        }
                    });
                }
            }
        }
        Ok(())
    }

    /// Binds `addr` (port 0: a free port) and serves in a task until the returned handle is dropped.
    pub async fn start(&self, addr: SocketAddr) -> io::Result<Running> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let endpoint = self.clone();
        let task = tokio::spawn(async move {
            endpoint
                .serve(listener, async {
                    let _ = rx.await;
                })
                .await
        });
        Ok(Running {
            addr,
            endpoint: self.clone(),
            shutdown: Some(tx),
            task,
        })
    }
}

/// A served endpoint; dropping it stops the server.
pub struct Running {
    pub addr: SocketAddr,
    pub endpoint: Endpoint,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl Running {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.abort();
    }
}

/// Whether a request is for S3: any path below `/` but the control routes. DynamoDB's API is `POST /`.
fn is_s3(path: &str) -> bool {
    path.strip_prefix('/')
        .is_some_and(|p| !p.is_empty() && !CONTROL_ROUTES.contains(&p))
}

async fn handle(
    state: Arc<State>,
    s3: Option<Arc<S3>>,
    req: Request<Incoming>,
) -> Result<Response<Body>, DropConnection> {
    if let Some(s3) = &s3
        && is_s3(req.uri().path())
    {
        return Ok(s3.handle(req).await);
    }
    match (req.method(), req.uri().path()) {
        (&Method::POST, "/") => api(&state, req).await,
        (&Method::GET, "/stats") => Ok(plain(
            StatusCode::OK,
            "application/json",
            serde_json::to_vec(&state.stats()).expect("stats serialise"),
        )),
        (&Method::GET, "/items") => {
            let table = req
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .find_map(|kv| kv.strip_prefix("table="))
                .unwrap_or("");
            Ok(match state.items_jsonl(table) {
                Some(lines) => plain(StatusCode::OK, "application/x-ndjson", lines.into_bytes()),
                None => plain(
                    StatusCode::NOT_FOUND,
                    "text/plain",
                    format!(
                        "no stored items for table `{table}`: give ?table=NAME of a declared table, and \
                         start the endpoint with --store\n"
                    )
                    .into_bytes(),
                ),
            })
        }
        (&Method::POST, "/reset") => {
            state.reset();
            Ok(plain(
                StatusCode::OK,
                "application/json",
                b"{\"reset\":true}".to_vec(),
            ))
        }
        _ => Ok(plain(
            StatusCode::NOT_FOUND,
            "text/plain",
            format!(
                "routes: POST / (DynamoDB API), GET /stats, GET /items?table=NAME, POST /reset{}\n",
                if s3.is_some() {
                    ", and S3 path-style requests /BUCKET[/KEY]"
                } else {
                    " (S3 requests need --s3-root DIR)"
                }
            )
            .into_bytes(),
        )),
    }
}

async fn api(state: &State, req: Request<Incoming>) -> Result<Response<Body>, DropConnection> {
    state.counters.requests.fetch_add(1, Ordering::Relaxed);
    let operation = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(Operation::from_target);
    // The whole body is read before any answer, so that the connection stays usable.
    let body = match Limited::new(req.into_body(), protocol::MAX_REQUEST_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Ok(error(
                state,
                &ApiError::validation("The total request size exceeds 16 MB (16,777,216 bytes)"),
            ));
        }
        Err(_) => return Err(DropConnection),
    };
    let fault = state.draw_fault();
    if let Some(Fault::Status(code)) = fault {
        let message = match code {
            ErrorCode::InternalServerError => "Internal server error (injected fault)",
            _ => "Service unavailable (injected fault)",
        };
        return Ok(error(state, &ApiError::new(code, message)));
    }
    let result = match operation {
        Some(Operation::BatchWriteItem) => state.batch_write_item(&body),
        Some(Operation::DescribeTable) => state.describe_table(&body),
        Some(Operation::Unsupported(target)) => Err(ApiError::new(
            ErrorCode::UnknownOperation,
            format!(
                "ddb-bench-endpoint implements DynamoDB_20120810.BatchWriteItem and DescribeTable only, not `{target}`"
            ),
        )),
        None => Err(ApiError::new(
            ErrorCode::UnknownOperation,
            "missing X-Amz-Target header: expected DynamoDB_20120810.<Operation>",
        )),
    };
    if fault == Some(Fault::Drop) {
        return Err(DropConnection);
    }
    Ok(match result {
        Ok(body) => plain(StatusCode::OK, protocol::CONTENT_TYPE, body),
        Err(e) => error(state, &e),
    })
}

fn error(state: &State, e: &ApiError) -> Response<Body> {
    if e.code.status() == 400 && e.code != ErrorCode::ProvisionedThroughputExceeded {
        state
            .counters
            .error_responses
            .fetch_add(1, Ordering::Relaxed);
    }
    let status = StatusCode::from_u16(e.code.status()).expect("a valid status");
    plain(status, protocol::CONTENT_TYPE, e.body())
}

fn plain(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&next_request_id()) {
        headers.insert("x-amzn-requestid", v);
    }
    response
}
