//! Shared functionality for the AWS services ddb-pitr calls: the clients, built once per process with the
//! retry and timeout settings of every front door, and the wording and classification of SDK errors
//! ([`error`]), and ARNs taken apart ([`arn`]). Lambda configuration from the environment is in [`env`](mod@env), CloudWatch embedded metrics in
//! [`metrics`].

pub mod arn;
pub mod env;
pub mod error;
pub mod metrics;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_smithy_runtime_api::client::interceptors::{Intercept, SharedInterceptor};

use crate::error::{Error, Result};

use self::error::describe;

/// Where the AWS clients point, and as whom. The table side (DynamoDB, SQS, Step Functions, the checkpoint
/// and report objects) uses the standard configuration chain with `region` and `endpoint_url`; the export
/// bucket may be in another account and region and gets its own [`S3Side`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientOptions {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub s3: S3Side,
}

/// How the exports are read: a central backup bucket is often in another account and region. Unset fields
/// take the table side's settings; with none set, the exports are read with the table side's client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Side {
    pub region: Option<String>,
    /// A named profile of the shared AWS config and credentials files.
    pub profile: Option<String>,
    /// A role assumed (sts:AssumeRole) with the profile's credentials, or else the default chain's. The SDK
    /// refreshes the role's credentials before they expire.
    pub role_arn: Option<String>,
    pub endpoint_url: Option<String>,
}

impl S3Side {
    /// Whether the exports are read as another principal than the table side's.
    pub fn other_principal(&self) -> bool {
        self.profile.is_some() || self.role_arn.is_some()
    }

    fn is_default(&self) -> bool {
        *self == S3Side::default()
    }
}

impl ClientOptions {
    /// The Lambda functions' settings: the function's region and credentials for the table side, and
    /// `DDB_PITR_S3_REGION`, `DDB_PITR_S3_ROLE_ARN`, `DDB_PITR_S3_ENDPOINT_URL` for the export bucket.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        ClientOptions {
            region: None,
            endpoint_url: None,
            s3: S3Side {
                region: var("DDB_PITR_S3_REGION"),
                profile: None,
                role_arn: var("DDB_PITR_S3_ROLE_ARN"),
                endpoint_url: var("DDB_PITR_S3_ENDPOINT_URL"),
            },
        }
    }
}

/// The clients of the export bucket's side ([`S3Side`]).
#[derive(Clone)]
pub struct ExportClients {
    /// Reads the manifests and data files.
    pub s3: aws_sdk_s3::Client,
    /// Names the principal that reads them (`validate`).
    pub sts: aws_sdk_sts::Client,
    /// Whether that principal is another one than the table side's (`--s3-profile`, `--s3-role-arn`).
    pub other_principal: bool,
}

#[derive(Clone)]
pub struct Clients {
    /// The table side's S3: the checkpoint and the report.
    pub s3: aws_sdk_s3::Client,
    /// The export bucket's side: every read of an export.
    pub exports: ExportClients,
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// DynamoDB of the exported table, for its export APIs (ListExports, DescribeExport,
    /// ExportTableToPointInTime, DescribeContinuousBackups): the table side's client, moved to the source
    /// table's region by [`Clients::source_in`].
    pub source: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub sts: aws_sdk_sts::Client,
    pub iam: aws_sdk_iam::Client,
    pub autoscaling: aws_sdk_applicationautoscaling::Client,
}

impl Clients {
    /// Clients from the standard AWS configuration chain, with the retry and timeout settings every
    /// ddb-pitr front door uses (the CLI, the Lambda functions): 5 attempts for control-plane calls, a
    /// 5 s connect timeout and 60 s per attempt, so a stalled connection is retried instead of hanging.
    /// BatchWriteItem retries are paced by the writer instead (`write::write_all`).
    ///
    /// The export side ([`S3Side`]) gets its own configuration when any of its settings is given: its region
    /// (else the table side's), its profile, its role (assumed on top of the profile or the default chain),
    /// its endpoint (else the table side's).
    pub async fn load(opts: &ClientOptions) -> Self {
        let table_side = loader(opts.region.as_deref(), opts.endpoint_url.as_deref(), None)
            .load()
            .await;
        let mut clients = Clients::from_sdk_config(&table_side);
        if opts.s3.is_default() {
            return clients;
        }
        let side = &opts.s3;
        let region = side
            .region
            .clone()
            .or_else(|| table_side.region().map(|r| r.to_string()));
        let endpoint = side
            .endpoint_url
            .as_deref()
            .or(opts.endpoint_url.as_deref());
        let base = loader(region.as_deref(), endpoint, side.profile.as_deref());
        let config = match &side.role_arn {
            None => base.load().await,
            Some(role) => {
                let provider = aws_config::sts::AssumeRoleProvider::builder(role)
                    .session_name("ddb-pitr-exports")
                    .configure(&base.load().await)
                    .build()
                    .await;
                loader(region.as_deref(), endpoint, side.profile.as_deref())
                    .credentials_provider(provider)
                    .load()
                    .await
            }
        };
        clients.exports = ExportClients {
            s3: s3_client(&config),
            sts: aws_sdk_sts::Client::new(&config),
            other_principal: side.other_principal(),
        };
        clients
    }

    /// Clients for every service ddb-pitr calls, from one SDK configuration.
    ///
    /// Emulators are reached by address, so bucket names cannot go in the host name: S3 uses path-style
    /// addressing whenever an endpoint is configured. `endpoint_url()` covers a code-set endpoint,
    /// `AWS_ENDPOINT_URL` and a profile's `endpoint_url`; the S3-specific variable is checked apart.
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig) -> Self {
        let s3 = s3_client(sdk);
        let sts = aws_sdk_sts::Client::new(sdk);
        Clients {
            exports: ExportClients {
                s3: s3.clone(),
                sts: sts.clone(),
                other_principal: false,
            },
            s3,
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            source: aws_sdk_dynamodb::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            sfn: aws_sdk_sfn::Client::new(sdk),
            sts,
            iam: aws_sdk_iam::Client::new(sdk),
            autoscaling: aws_sdk_applicationautoscaling::Client::new(sdk),
        }
    }
}

impl Clients {
    /// The same clients with `interceptor` added to each (e.g. the tests' `CallLog`). Clients derived from these
    /// later (the BatchWriteItem client without SDK retries) keep it, as they are rebuilt from the config.
    pub fn with_interceptor(&self, interceptor: impl Intercept + 'static) -> Clients {
        let shared = SharedInterceptor::new(interceptor);
        macro_rules! rebuild {
            ($client:expr, $krate:ident) => {{
                let mut builder = $client.config().to_builder();
                builder.push_interceptor(shared.clone());
                $krate::Client::from_conf(builder.build())
            }};
        }
        Clients {
            exports: ExportClients {
                s3: rebuild!(self.exports.s3, aws_sdk_s3),
                sts: rebuild!(self.exports.sts, aws_sdk_sts),
                other_principal: self.exports.other_principal,
            },
            s3: rebuild!(self.s3, aws_sdk_s3),
            dynamodb: rebuild!(self.dynamodb, aws_sdk_dynamodb),
            source: rebuild!(self.source, aws_sdk_dynamodb),
            sqs: rebuild!(self.sqs, aws_sdk_sqs),
            sfn: rebuild!(self.sfn, aws_sdk_sfn),
            sts: rebuild!(self.sts, aws_sdk_sts),
            iam: rebuild!(self.iam, aws_sdk_iam),
            autoscaling: rebuild!(self.autoscaling, aws_sdk_applicationautoscaling),
        }
    }
}

impl Clients {
    /// [`Clients::source`] in `region` (a source table ARN's): the same client when it is already there.
    pub fn source_in(&self, region: &str) -> aws_sdk_dynamodb::Client {
        if self
            .source
            .config()
            .region()
            .is_some_and(|r| r.as_ref() == region)
        {
            return self.source.clone();
        }
        let config = self
            .source
            .config()
            .to_builder()
            .region(aws_config::Region::new(region.to_owned()))
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }
}

/// The configuration chain with every front door's retry and timeout settings.
fn loader(
    region: Option<&str>,
    endpoint_url: Option<&str>,
    profile: Option<&str>,
) -> aws_config::ConfigLoader {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(5))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(60))
                .build(),
        );
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region.to_owned()));
    }
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(profile) = profile {
        loader = loader.profile_name(profile);
    }
    loader
}

/// S3 with path-style addressing whenever an endpoint is configured (see [`Clients::from_sdk_config`]).
fn s3_client(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let custom_endpoint =
        sdk.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(custom_endpoint)
            .build(),
    )
}

/// The account of the caller's credentials (sts:GetCallerIdentity, which needs no permission).
pub async fn caller_account(sts: &aws_sdk_sts::Client) -> Result<String> {
    let out = sts.get_caller_identity().send().await.map_err(|e| {
        Error::Usage(format!(
            "the account id is unknown: pass --account or a table ARN (sts:GetCallerIdentity failed: {})",
            describe(&e)
        ))
    })?;
    out.account().map(str::to_owned).ok_or_else(|| {
        Error::Usage("sts:GetCallerIdentity returned no account; pass --account".into())
    })
}
