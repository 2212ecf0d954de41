//! `ddb-bench-endpoint`: serve until SIGINT or SIGTERM. Prints `{"endpoint":"http://ADDR"}` on stdout once
//! listening; logs go to stderr.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use ddb_bench_endpoint::{Config, TableSpec, ThrottleMode};

/// A fast local DynamoDB-protocol endpoint (BatchWriteItem, DescribeTable) for benchmarks and fault tests.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0", env = "DDB_BENCH_LISTEN")]
    listen: SocketAddr,
    /// A table: NAME:PK:TYPE or NAME:PK:TYPE:SK:TYPE, TYPE one of S, N, B. Repeatable.
    #[arg(long = "table", required_unless_present = "s3_root")]
    tables: Vec<TableSpec>,
    /// Provisioned write capacity of each table, in WCU per second. Without it: on-demand, no limit.
    #[arg(long)]
    wcu: Option<u64>,
    /// Seconds of unused capacity kept as burst (DynamoDB keeps up to 300). 0: the cap is exact.
    #[arg(long, default_value_t = 0)]
    burst_seconds: u64,
    /// When a batch does not fit: `unprocessed` (write what fits, return the rest in UnprocessedItems) or
    /// `error` (ProvisionedThroughputExceededException for the whole call).
    #[arg(long, default_value = "unprocessed")]
    throttle_mode: ThrottleMode,
    /// Keep every item, for GET /items?table=NAME.
    #[arg(long)]
    store: bool,
    /// Keep counters only: no per-key state, no key digest.
    #[arg(long, conflicts_with = "store")]
    count_only: bool,
    /// Probability per API call of a 500 InternalServerError or 503 answer.
    #[arg(long, default_value_t = 0.0)]
    fault_5xx_rate: f64,
    /// Probability per API call that the connection is closed without an answer (after applying it).
    #[arg(long, default_value_t = 0.0)]
    fault_drop_rate: f64,
    /// Seed of the fault injection.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Also serve S3 path-style requests on the same port: GET /BUCKET/KEY reads DIR/BUCKET/KEY.
    #[arg(long, value_name = "DIR")]
    s3_root: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = Config {
        tables: args.tables,
        wcu: args.wcu,
        burst_seconds: args.burst_seconds,
        throttle_mode: args.throttle_mode,
        store: args.store,
        count_only: args.count_only,
        fault_5xx_rate: args.fault_5xx_rate,
        fault_drop_rate: args.fault_drop_rate,
        seed: args.seed,
        s3_root: args.s3_root,
    };
    let endpoint = ddb_bench_endpoint::endpoint(config)?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        runtime.worker_threads(n);
    }
    let runtime = runtime
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        let addr = listener.local_addr()?;
        let mut stdout = std::io::stdout().lock();
        writeln!(
            stdout,
            "{}",
            serde_json::json!({ "endpoint": format!("http://{addr}") })
        )?;
        stdout.flush()?;
        drop(stdout);
        tracing::info!(%addr, "listening");
        endpoint.serve(listener, shutdown_signal()).await?;
        tracing::info!(stats = %serde_json::to_string(&endpoint.stats())?, "stopped");
        Ok(())
    })
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
