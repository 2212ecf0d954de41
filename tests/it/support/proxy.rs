//! A recording HTTP/1.1 proxy in front of moto, for tests that assert which AWS calls were made
//! (e.g. "a resumed restore issues no BatchWriteItem for finished files").
//!
//! Each request is forwarded byte for byte (request line, every header including `Host` — SigV4
//! signs it — and the body) on a new upstream connection, with one change: the `Connection`
//! header becomes `Connection: close` on both sides. The response is then simply streamed back
//! until the upstream closes, whatever its framing, and the client (the SDK's keep-alive hyper
//! pool) sees `Connection: close` and does not reuse the connection. Request bodies are read by
//! their framing (`Content-Length` or `Transfer-Encoding: chunked`) while the response streams,
//! so `Expect: 100-continue` also works.
//!
//! The proxy runs on its own thread and runtime, so it keeps serving while a test blocks its own
//! thread, e.g. on `std::process::Command::output()` of the CLI pointed at the proxy.

use std::sync::{Arc, Mutex};

use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Longest request or response head accepted (DynamoDB/S3 heads are ~2 KB).
const MAX_HEAD: usize = 64 * 1024;

pub struct RecordingProxy {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    log: Arc<Mutex<Vec<(String, String)>>>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RecordingProxy {
    /// Starts a proxy on 127.0.0.1 (free port) forwarding to `upstream` (`http://HOST:PORT`).
    pub async fn start(upstream: &str) -> RecordingProxy {
        let upstream_addr = upstream
            .strip_prefix("http://")
            .unwrap_or_else(|| {
                panic!("RecordingProxy upstream must be http://HOST:PORT, got {upstream}")
            })
            .trim_end_matches('/')
            .to_owned();
        let std_listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy on 127.0.0.1");
        std_listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let port = std_listener.local_addr().expect("local addr").port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = oneshot::channel::<()>();
        let thread_log = Arc::clone(&log);
        let thread = std::thread::Builder::new()
            .name(format!("recording-proxy-{port}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("proxy runtime");
                rt.block_on(async move {
                    let listener = TcpListener::from_std(std_listener).expect("tokio listener");
                    tokio::select! {
                        _ = rx => {}
                        _ = accept_loop(listener, upstream_addr, thread_log) => {}
                    }
                });
                // Dropping the runtime cancels the per-connection tasks.
            })
            .expect("spawn proxy thread");
        RecordingProxy {
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// One entry per request, in arrival order: the `X-Amz-Target` header when present
    /// (`DynamoDB_20120810.BatchWriteItem`), otherwise `"<METHOD> <path>"` without the query
    /// (`PUT /bucket/key`).
    pub fn requests(&self) -> Vec<String> {
        self.signed().into_iter().map(|(entry, _)| entry).collect()
    }

    /// Each request as in [`Self::requests`], with the SigV4 credential scope that signed it
    /// (`ACCESS_KEY/DATE/REGION/SERVICE/aws4_request`, empty when unsigned).
    pub fn signed(&self) -> Vec<(String, String)> {
        self.log.lock().expect("proxy log").clone()
    }

    /// Forgets the requests recorded so far.
    pub fn clear(&self) {
        self.log.lock().expect("proxy log").clear();
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: String,
    log: Arc<Mutex<Vec<(String, String)>>>,
) {
    loop {
        let (conn, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("recording proxy: accept failed: {e}");
                continue;
            }
        };
        let upstream = upstream.clone();
        let log = Arc::clone(&log);
        tokio::spawn(async move {
            if let Err(e) = serve(conn, &upstream, &log).await {
                eprintln!("recording proxy: {e}");
            }
        });
    }
}

struct Head {
    /// The start line, without CRLF.
    start: String,
    /// Header lines as (name, value), in order, without CRLF.
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The head with `Connection: close` replacing any `Connection` header.
    fn to_bytes_closing(&self) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.start);
        for (n, v) in &self.headers {
            if !n.eq_ignore_ascii_case("connection") {
                out.push_str(&format!("{n}: {v}\r\n"));
            }
        }
        out.push_str("Connection: close\r\n\r\n");
        out.into_bytes()
    }
}

/// Reads one message head; `Ok(None)` on a clean EOF before any byte.
async fn read_head<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<Option<Head>, String> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = Vec::new();
        let n = r
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| format!("reading head: {e}"))?;
        if n == 0 {
            return if lines.is_empty() && total == 0 {
                Ok(None)
            } else {
                Err("connection closed inside a message head".into())
            };
        }
        total += n;
        if total > MAX_HEAD {
            return Err("message head too long".into());
        }
        let text = String::from_utf8(line).map_err(|_| "non-UTF-8 message head".to_string())?;
        let text = text.trim_end_matches(['\r', '\n']).to_owned();
        if text.is_empty() {
            if lines.is_empty() {
                continue; // tolerate stray CRLF before a request line (RFC 9112 §2.2)
            }
            break;
        }
        lines.push(text);
    }
    let start = lines.remove(0);
    let headers = lines
        .into_iter()
        .map(|l| match l.split_once(':') {
            Some((n, v)) => Ok((n.trim().to_owned(), v.trim().to_owned())),
            None => Err(format!("malformed header line {l:?}")),
        })
        .collect::<Result<_, _>>()?;
    Ok(Some(Head { start, headers }))
}

/// Serves one client connection: a single request, then close (see the module doc).
async fn serve(
    client: TcpStream,
    upstream: &str,
    log: &Mutex<Vec<(String, String)>>,
) -> Result<(), String> {
    let (client_r, mut client_w) = client.into_split();
    let mut client_r = BufReader::new(client_r);
    let Some(req) = read_head(&mut client_r).await? else {
        return Ok(()); // the pool opened a connection and closed it unused
    };

    let mut parts = req.start.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default();
    let entry = match req.get("x-amz-target") {
        Some(t) => t.to_owned(),
        None => format!("{method} {path}"),
    };
    let scope = req
        .get("authorization")
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split(',').next())
        .unwrap_or_default()
        .to_owned();
    log.lock().expect("proxy log").push((entry, scope));

    let upstream_conn = TcpStream::connect(upstream)
        .await
        .map_err(|e| format!("connecting to upstream {upstream}: {e}"))?;
    let (up_r, mut up_w) = upstream_conn.into_split();
    up_w.write_all(&req.to_bytes_closing())
        .await
        .map_err(|e| format!("writing request head upstream: {e}"))?;

    let framing = if req
        .get("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
    {
        BodyFraming::Chunked
    } else {
        match req.get("content-length") {
            Some(v) => {
                BodyFraming::Length(v.parse().map_err(|_| format!("bad Content-Length {v:?}"))?)
            }
            None => BodyFraming::Length(0),
        }
    };

    let send_body = async move {
        let res = match copy_body(&mut client_r, &mut up_w, framing).await {
            Ok(()) => up_w
                .flush()
                .await
                .map_err(|e| format!("flushing request upstream: {e}")),
            Err(e) => Err(e),
        };
        if res.is_err() {
            // Don't leave the upstream waiting for body bytes that will never come.
            let _ = up_w.shutdown().await;
        }
        res
    };
    let relay_response = async {
        let mut up_r = BufReader::new(up_r);
        // Interim 1xx heads (100 Continue) are forwarded as they are; the final head gets
        // `Connection: close`; then the body streams until the upstream closes.
        loop {
            let head = read_head(&mut up_r)
                .await?
                .ok_or("upstream closed without a response")?;
            let interim = head
                .start
                .split_whitespace()
                .nth(1)
                .is_some_and(|code| code.starts_with('1') && code != "101");
            let bytes = if interim {
                let mut b = format!("{}\r\n", head.start);
                for (n, v) in &head.headers {
                    b.push_str(&format!("{n}: {v}\r\n"));
                }
                b.push_str("\r\n");
                b.into_bytes()
            } else {
                head.to_bytes_closing()
            };
            client_w
                .write_all(&bytes)
                .await
                .map_err(|e| format!("writing response head: {e}"))?;
            if !interim {
                break;
            }
        }
        tokio::io::copy_buf(&mut up_r, &mut client_w)
            .await
            .map_err(|e| format!("relaying response body: {e}"))?;
        client_w
            .shutdown()
            .await
            .map_err(|e| format!("closing client connection: {e}"))
    };
    let (sent, relayed) = tokio::join!(send_body, relay_response);
    // Once the response went out, a body that could not be sent in full (the upstream answered
    // early and closed) no longer matters to the client.
    relayed.map_err(|e| match sent {
        Err(se) => format!("{e} (sending the request body: {se})"),
        Ok(()) => e,
    })
}

#[derive(Clone, Copy)]
enum BodyFraming {
    Length(u64),
    Chunked,
}

/// Copies exactly one request body, byte for byte, as its framing delimits it.
async fn copy_body<R, W>(r: &mut R, w: &mut W, framing: BodyFraming) -> Result<(), String>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match framing {
        BodyFraming::Length(n) => {
            let copied = tokio::io::copy(&mut (&mut *r).take(n), w)
                .await
                .map_err(|e| format!("copying request body: {e}"))?;
            if copied != n {
                return Err(format!(
                    "client closed after {copied} of {n} request body bytes"
                ));
            }
        }
        BodyFraming::Chunked => loop {
            // chunk-size [; ext] CRLF, data, CRLF ... 0 CRLF, trailers, CRLF
            let mut size_line = Vec::new();
            r.read_until(b'\n', &mut size_line)
                .await
                .map_err(|e| format!("reading chunk size: {e}"))?;
            w.write_all(&size_line)
                .await
                .map_err(|e| format!("writing chunk size: {e}"))?;
            let text = String::from_utf8_lossy(&size_line);
            let hex = text.split(';').next().unwrap_or_default().trim();
            let size = u64::from_str_radix(hex, 16)
                .map_err(|_| format!("bad chunk size line {text:?} (client closed?)"))?;
            if size == 0 {
                // Trailer section: header lines until an empty line.
                loop {
                    let mut line = Vec::new();
                    let n = r
                        .read_until(b'\n', &mut line)
                        .await
                        .map_err(|e| format!("reading trailers: {e}"))?;
                    w.write_all(&line)
                        .await
                        .map_err(|e| format!("writing trailers: {e}"))?;
                    if n == 0 || line == b"\r\n" || line == b"\n" {
                        return Ok(());
                    }
                }
            }
            let copied = tokio::io::copy(&mut (&mut *r).take(size + 2), w)
                .await
                .map_err(|e| format!("copying chunk: {e}"))?;
            if copied != size + 2 {
                return Err("client closed inside a chunk".into());
            }
        },
    }
    Ok(())
}
