//! Shared test set-up: moto-backed AWS clients, wiremock upstreams, recorded fixtures.

use std::path::PathBuf;
use std::sync::Arc;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_sqs::types::QueueAttributeName;
use pr_digest::config::{
    AnthropicConfig, ApiConfig, AuthMode, Environment, GithubConfig, HttpTimeouts, NangoConfig,
    WorkerConfig,
};
use pr_digest::queue::{QueueError, Redelivery};
use pr_digest::store::DynamoDbAnalysisStore;
use pr_digest::upstream::anthropic::AnthropicClient;
use pr_digest::upstream::github::GithubClient;
use pr_digest::upstream::nango::NangoClient;
use pr_digest::worker::{RetryPolicy, Worker};
use secrecy::SecretString;
use serde_json::Value;
use wiremock::MockServer;

pub const NANGO_KEY: &str = "test-nango-secret-key";
pub const ANTHROPIC_KEY: &str = "test-anthropic-api-key";
pub const GITHUB_TOKEN: &str = "gho_test_token_0123456789";
pub const INTEGRATION_ID: &str = "github";

/// Returns the moto server endpoint that `make test` starts and exports.
pub fn moto_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!("AWS_ENDPOINT_URL is not set: run the tests with `make test`, which starts moto server on 127.0.0.1")
    })
}

pub async fn sdk_config() -> aws_config::SdkConfig {
    let endpoint = moto_endpoint();
    assert!(
        endpoint.starts_with("http://127.0.0.1") || endpoint.starts_with("http://localhost"),
        "tests only talk to a local emulator, not {endpoint}"
    );
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await
}

fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Creates a fresh on-demand table on moto whose partition key is the string `key`.
pub async fn create_table(prefix: &str, key: &str) -> (aws_sdk_dynamodb::Client, String) {
    let client = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let table = unique_name(prefix);
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(key)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("valid"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(key)
                .key_type(KeyType::Hash)
                .build()
                .expect("valid"),
        )
        .send()
        .await
        .expect("moto creates the table");
    (client, table)
}

/// Creates a fresh analyses table on moto and returns a store on it.
pub async fn create_store() -> (DynamoDbAnalysisStore, aws_sdk_dynamodb::Client, String) {
    let (client, table) = create_table("analyses", "id").await;
    (
        DynamoDbAnalysisStore::new(client.clone(), &table, 30),
        client,
        table,
    )
}

/// Creates a fresh queue on moto and returns its client and URL.
pub async fn create_queue() -> (aws_sdk_sqs::Client, String) {
    let client = aws_sdk_sqs::Client::new(&sdk_config().await);
    let output = client
        .create_queue()
        .queue_name(unique_name("analyses"))
        .attributes(QueueAttributeName::VisibilityTimeout, "30")
        .send()
        .await
        .expect("moto creates the queue");
    (client, output.queue_url.expect("queue URL"))
}

/// Reads a recorded GitHub response from the team's fixtures beside the project.
pub fn github_fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/github")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture is JSON")
}

pub fn fast_timeouts() -> HttpTimeouts {
    HttpTimeouts {
        connect: std::time::Duration::from_millis(500),
        total: std::time::Duration::from_secs(2),
    }
}

pub fn nango_client(server: &MockServer) -> NangoClient {
    nango_client_at(&server.uri())
}

/// Builds a Nango client for `base_url`, such as a port where nothing listens.
pub fn nango_client_at(base_url: &str) -> NangoClient {
    NangoClient::new(NangoConfig {
        base_url: base_url.parse().expect("mock URL"),
        secret_key: SecretString::from(NANGO_KEY),
        integration_id: INTEGRATION_ID.into(),
        timeouts: fast_timeouts(),
    })
    .expect("client builds")
}

pub fn github_client(server: &MockServer, max_pull_requests: usize) -> GithubClient {
    github_client_at(&server.uri(), max_pull_requests)
}

/// Builds a GitHub client for `base_url`.
pub fn github_client_at(base_url: &str, max_pull_requests: usize) -> GithubClient {
    GithubClient::new(GithubConfig {
        api_url: base_url.parse().expect("mock URL"),
        max_pull_requests,
        timeouts: fast_timeouts(),
    })
    .expect("client builds")
}

pub fn anthropic_client(server: &MockServer) -> AnthropicClient {
    anthropic_client_at(&server.uri())
}

/// Builds an Anthropic client for `base_url`.
pub fn anthropic_client_at(base_url: &str) -> AnthropicClient {
    let env = Environment::from_pairs([]);
    let mut config =
        AnthropicConfig::from_env(&env, SecretString::from(ANTHROPIC_KEY)).expect("defaults");
    config.base_url = base_url.parse().expect("mock URL");
    config.timeouts = fast_timeouts();
    AnthropicClient::new(config).expect("client builds")
}

/// Worker settings with millisecond backoffs, so retry tests run fast.
pub fn worker_config() -> WorkerConfig {
    let mut config = WorkerConfig::from_env(&Environment::from_pairs([])).expect("defaults");
    config.retry = RetryPolicy {
        in_invocation_retries: 2,
        max_in_invocation_wait: std::time::Duration::from_secs(1),
        base_backoff: std::time::Duration::from_millis(10),
        max_backoff: std::time::Duration::from_millis(40),
        base_requeue_delay: std::time::Duration::from_secs(30),
        max_requeue_delay: std::time::Duration::from_secs(900),
    };
    config
}

/// A [`Redelivery`] that records every postponement instead of calling SQS.
#[derive(Default)]
pub struct RecordedRedelivery {
    pub postponed: std::sync::Mutex<Vec<(String, std::time::Duration)>>,
}

impl RecordedRedelivery {
    pub fn delays(&self) -> Vec<std::time::Duration> {
        self.postponed
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|(_, delay)| *delay)
            .collect()
    }
}

#[async_trait::async_trait]
impl Redelivery for RecordedRedelivery {
    async fn postpone(
        &self,
        receipt_handle: &str,
        delay: std::time::Duration,
    ) -> Result<(), QueueError> {
        self.postponed
            .lock()
            .expect("not poisoned")
            .push((receipt_handle.to_owned(), delay));
        Ok(())
    }
}

/// Builds a worker whose three upstreams are the same wiremock server, on a fresh moto table.
pub async fn worker_on(server: &MockServer) -> (Worker, Arc<DynamoDbAnalysisStore>) {
    let (worker, store, _) = worker_recording(server).await;
    (worker, store)
}

/// Like [`worker_on`], also returning the postponements the worker asked for.
pub async fn worker_recording(
    server: &MockServer,
) -> (Worker, Arc<DynamoDbAnalysisStore>, Arc<RecordedRedelivery>) {
    let (store, _, _) = create_store().await;
    let store = Arc::new(store);
    let redelivery = Arc::new(RecordedRedelivery::default());
    let worker = Worker::new(
        store.clone(),
        redelivery.clone(),
        nango_client(server),
        github_client(server, 200),
        anthropic_client(server),
        worker_config(),
    );
    (worker, store, redelivery)
}

pub fn dev_api_config() -> ApiConfig {
    ApiConfig {
        auth_mode: AuthMode::Dev,
        allowed_origins: vec!["http://localhost:5173".into()],
    }
}

pub fn jwt_api_config() -> ApiConfig {
    ApiConfig {
        auth_mode: AuthMode::Jwt,
        allowed_origins: vec!["http://localhost:5173".into()],
    }
}

/// Returns a Nango connection response body with OAuth2 credentials.
pub fn nango_connection_body(connection_id: &str, owner: &str) -> Value {
    serde_json::json!({
        "id": 42,
        "connection_id": connection_id,
        "provider_config_key": INTEGRATION_ID,
        "provider": "github",
        "tags": {"end_user_id": owner},
        "end_user": null,
        "metadata": {},
        "created_at": "2026-11-01T10:00:00.000Z",
        "credentials": {
            "type": "OAUTH2",
            "access_token": GITHUB_TOKEN,
            "expires_at": "2026-12-04T21:00:00.000Z",
            "raw": {"access_token": GITHUB_TOKEN, "token_type": "bearer", "scope": "repo"}
        }
    })
}

/// Returns a Messages API response body with the given text blocks and stop reason.
pub fn anthropic_message_body(texts: &[&str], stop_reason: &str) -> Value {
    let content: Vec<Value> = texts
        .iter()
        .map(|t| serde_json::json!({"type": "text", "text": t}))
        .collect();
    serde_json::json!({
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-opus-4-6",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": {"input_tokens": 2095, "output_tokens": 503, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    })
}

/// Replays a recorded GitHub response, with `https://api.github.com` in its
/// `link` and `location` headers pointed at `base_url`.
pub fn recorded_response(fixture: &Value, base_url: &str) -> wiremock::ResponseTemplate {
    let status = fixture["status"].as_u64().expect("status") as u16;
    let mut template = wiremock::ResponseTemplate::new(status);
    if let Some(headers) = fixture["headers"].as_object() {
        for (name, value) in headers {
            let value = value
                .as_str()
                .expect("header text")
                .replace("https://api.github.com", base_url);
            if name != "content-type" {
                template = template.insert_header(name.as_str(), value.as_str());
            }
        }
    }
    template.set_body_json(fixture["body"].clone())
}

/// Reads a sample API Gateway or SQS event from the project's `events/` folder.
pub fn event(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading event {}: {e}", path.display()));
    serde_json::from_str(&text).expect("event is JSON")
}

/// Turns an API Gateway event into the request `lambda_http` hands a handler.
pub fn request(event: &Value) -> lambda_http::Request {
    lambda_http::request::from_str(&event.to_string()).expect("lambda_http reads the event")
}

/// Parses the body of a response as JSON.
pub fn response_json(response: &lambda_http::Response<lambda_http::Body>) -> Value {
    let bytes: &[u8] = match response.body() {
        lambda_http::Body::Empty => b"null",
        lambda_http::Body::Text(text) => text.as_bytes(),
        lambda_http::Body::Binary(bytes) => bytes,
        _ => b"null",
    };
    serde_json::from_slice(bytes).expect("response body is JSON")
}

/// Counts the messages waiting on a queue.
pub async fn queued_messages(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> Vec<aws_sdk_sqs::types::Message> {
    client
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await
        .expect("receive")
        .messages
        .unwrap_or_default()
}

/// Builds an SQS event as Lambda delivers it, one record per `(message id, body, receive count)`.
pub fn sqs_event(records: &[(&str, &str, u32)]) -> aws_lambda_events::event::sqs::SqsEvent {
    let records: Vec<Value> = records
        .iter()
        .map(|(message_id, body, receive_count)| {
            serde_json::json!({
                "messageId": message_id,
                "receiptHandle": format!("receipt-{message_id}"),
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": receive_count.to_string(),
                    "SentTimestamp": "1796414712000",
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": "1796414712001"
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:pr-digest-analyses",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).expect("valid SQS event")
}

/// Identifiers of the records a batch response hands back to the queue.
pub fn failed_ids(response: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

/// Returns the sample `GET /api/analyses/{id}` event, requesting analysis `id`.
pub fn get_event(id: &str) -> Value {
    let mut event = event("get-analysis.json");
    let placeholder = "00000000-0000-4000-8000-000000000000";
    for pointer in ["/rawPath", "/requestContext/http/path"] {
        let field = event.pointer_mut(pointer).expect("field present");
        *field = serde_json::json!(field.as_str().expect("text").replace(placeholder, id));
    }
    event["pathParameters"]["id"] = serde_json::json!(id);
    event
}

/// Creates a fresh access table (connection owners and quotas) on moto.
pub async fn create_access_store() -> Arc<pr_digest::access::DynamoDbAccessStore> {
    let (client, table) = create_table("access", "pk").await;
    Arc::new(pr_digest::access::DynamoDbAccessStore::new(
        client, table, 30,
    ))
}

/// Records `owner` as the verified owner of an active connection.
pub async fn seed_owner(
    access: &pr_digest::access::DynamoDbAccessStore,
    connection_id: &str,
    owner: &str,
) {
    use pr_digest::access::{AccessStore, ConnectionRecord, ConnectionStatus};
    let record = ConnectionRecord {
        connection_id: pr_digest::domain::ConnectionId::parse(connection_id).expect("valid"),
        integration_id: INTEGRATION_ID.into(),
        owner: pr_digest::domain::UserId::parse(owner).expect("valid"),
        status: ConnectionStatus::Active,
    };
    access
        .put_connection(&record, time::OffsetDateTime::now_utc())
        .await
        .expect("seeded");
}

/// Builds the analyze API on the given store and queue, checking owners in `access`
/// and asking the Nango mock `nango` on a miss.
pub fn analyses_api(
    store: Arc<dyn pr_digest::store::AnalysisStore>,
    queue: Arc<dyn pr_digest::queue::AnalysisQueue>,
    access: Arc<pr_digest::access::DynamoDbAccessStore>,
    nango: &MockServer,
    config: ApiConfig,
    max_analyses_per_hour: u32,
) -> pr_digest::api::AnalysesApi {
    use pr_digest::access::{AnalysisQuota, ConnectionOwnership};
    pr_digest::api::AnalysesApi::new(
        store,
        queue,
        ConnectionOwnership::new(access.clone(), nango_client(nango)),
        AnalysisQuota::new(access, max_analyses_per_hour),
        config,
    )
}
