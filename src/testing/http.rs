//! [`Canned`]: an SDK HTTP client that answers in process, for the tests and benchmarks of code that makes
//! SDK calls with no emulator behind it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::{Request as HttpRequest, Response as HttpResponse, StatusCode};
use aws_smithy_types::body::SdkBody;

/// A scripted answer: status, headers, body.
pub type Answer = (u16, Vec<(&'static str, &'static str)>, &'static str);

/// A request as it reached the HTTP client: method, URI, headers (lower-case names, sorted), body.
pub type Sent = (String, String, Vec<(String, String)>, String);

/// Answers from a script and records every request, or ([`Canned::always`]) answers every request alike
/// and records nothing.
#[derive(Debug, Clone, Default)]
pub struct Canned {
    answers: Arc<Mutex<VecDeque<Answer>>>,
    sent: Arc<Mutex<Vec<Sent>>>,
    always: Option<(u16, &'static str)>,
}

impl Canned {
    /// Answers the requests with these statuses and bodies, in order; a request past the end panics.
    pub fn answering(answers: &[(u16, &'static str)]) -> Self {
        let c = Canned::default();
        for &(status, body) in answers {
            c.answer(status, &[], body);
        }
        c
    }

    /// Answers every request with `status` and `body`, keeping no record: for benchmarks.
    pub fn always(status: u16, body: &'static str) -> Self {
        Canned {
            always: Some((status, body)),
            ..Canned::default()
        }
    }

    /// Adds an answer to the script.
    pub fn answer(
        &self,
        status: u16,
        headers: &[(&'static str, &'static str)],
        body: &'static str,
    ) {
        let mut answers = self.answers.lock().expect("answers");
        answers.push_back((status, headers.to_vec(), body));
    }

    /// The requests so far.
    pub fn sent(&self) -> Vec<Sent> {
        self.sent.lock().expect("sent").clone()
    }

    fn record(&self, request: &HttpRequest) {
        let mut headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
            .collect();
        headers.sort();
        let body = String::from_utf8_lossy(request.body().bytes().expect("an in-memory body"));
        self.sent.lock().expect("sent").push((
            request.method().to_owned(),
            request.uri().to_owned(),
            headers,
            body.into_owned(),
        ));
    }
}

impl HttpConnector for Canned {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let (status, headers, body) = match self.always {
            Some((status, body)) => (status, Vec::new(), body),
            None => {
                self.record(&request);
                self.answers
                    .lock()
                    .expect("answers")
                    .pop_front()
                    .expect("a scripted answer for every request")
            }
        };
        let mut response = HttpResponse::new(
            StatusCode::try_from(status).expect("an HTTP status"),
            SdkBody::from(body),
        );
        for (k, v) in headers {
            response.headers_mut().insert(k, v);
        }
        HttpConnectorFuture::ready(Ok(response))
    }
}

impl HttpClient for Canned {
    fn http_connector(
        &self,
        _: &HttpConnectorSettings,
        _: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// A DynamoDB client over `http`, with fixed credentials and clock (equal requests get equal signatures),
/// in eu-north-1, at a loopback endpoint nothing listens on, without the SDK's retries (one request per
/// call, one answer each).
pub fn dynamodb(http: &Canned) -> aws_sdk_dynamodb::Client {
    let mut builder = aws_sdk_dynamodb::Config::builder()
        .region(aws_sdk_dynamodb::config::Region::new("eu-north-1"))
        .endpoint_url("http://127.0.0.1:9")
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        .http_client(http.clone());
    builder.apply_test_defaults();
    aws_sdk_dynamodb::Client::from_conf(builder.build())
}
