//! Shared functionality for the AWS services ddb-pitr calls: the clients, built once per process with the
//! retry and timeout settings of every front door, and the wording and classification of SDK errors
//! ([`error`]). Lambda configuration from the environment is in [`env`](mod@env), CloudWatch embedded metrics in
//! [`metrics`].

pub mod env;
pub mod error;
pub mod metrics;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_smithy_runtime_api::client::interceptors::{Intercept, SharedInterceptor};

use crate::error::{Error, Result};

use self::error::describe;

#[derive(Clone)]
pub struct Clients {
    pub s3: aws_sdk_s3::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
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
    pub async fn load(region: Option<String>, endpoint_url: Option<String>) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(5))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(60))
                    .build(),
            );
        if let Some(region) = region {
            loader = loader.region(aws_config::Region::new(region));
        }
        if let Some(url) = endpoint_url {
            loader = loader.endpoint_url(url);
        }
        Clients::from_sdk_config(&loader.load().await)
    }

    /// Clients for every service ddb-pitr calls, from one SDK configuration.
    ///
    /// Emulators are reached by address, so bucket names cannot go in the host name: S3 uses path-style
    /// addressing whenever an endpoint is configured. `endpoint_url()` covers a code-set endpoint,
    /// `AWS_ENDPOINT_URL` and a profile's `endpoint_url`; the S3-specific variable is checked apart.
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig) -> Self {
        let custom_endpoint =
            sdk.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        let s3 = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(custom_endpoint)
            .build();
        Clients {
            s3: aws_sdk_s3::Client::from_conf(s3),
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            sfn: aws_sdk_sfn::Client::new(sdk),
            sts: aws_sdk_sts::Client::new(sdk),
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
            s3: rebuild!(self.s3, aws_sdk_s3),
            dynamodb: rebuild!(self.dynamodb, aws_sdk_dynamodb),
            sqs: rebuild!(self.sqs, aws_sdk_sqs),
            sfn: rebuild!(self.sfn, aws_sdk_sfn),
            sts: rebuild!(self.sts, aws_sdk_sts),
            iam: rebuild!(self.iam, aws_sdk_iam),
            autoscaling: rebuild!(self.autoscaling, aws_sdk_applicationautoscaling),
        }
    }
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
