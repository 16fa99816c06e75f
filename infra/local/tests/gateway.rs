//! The local gateway against a fake `cargo lambda watch`.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Router;
use local_stack::gateway::Gateway;
use local_stack::server::bind_loopback;
use serde_json::{json, Value};

/// Responds to every request with a JSON echo of what arrived, status 201 and a custom header.
async fn echo(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let echo = json!({
        "method": method.as_str(),
        "uri": uri.to_string(),
        "userId": header("x-user-id"),
        "contentType": header("content-type"),
        "signature": header("x-nango-hmac-sha256"),
        "body": String::from_utf8_lossy(&body),
    });
    (
        StatusCode::CREATED,
        [("x-function", "echo"), ("content-type", "application/json")],
        echo.to_string(),
    )
}

async fn serve(router: Router) -> String {
    let listener = bind_loopback(0).await.expect("a free loopback port");
    let address = listener.local_addr().expect("a bound address");
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serves");
    });
    format!("http://{address}")
}

async fn start_gateway(lambda_watch_url: &str) -> String {
    let gateway = Gateway::new(lambda_watch_url, Duration::from_secs(5)).expect("client builds");
    serve(gateway.router()).await
}

#[tokio::test]
async fn gateway_forwards_request_and_response() {
    let lambda_watch_url = serve(Router::new().fallback(echo)).await;
    let gateway_url = start_gateway(&lambda_watch_url).await;

    let response = reqwest::Client::new()
        .post(format!("{gateway_url}/api/nango-session?a=1&b=%2F"))
        .header("x-user-id", "demo-user")
        .header("content-type", "application/json")
        .body(r#"{"k":"v"}"#)
        .send()
        .await
        .expect("a response");

    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        response.headers().get("x-function").map(|v| v.as_bytes()),
        Some(&b"echo"[..])
    );
    let echo: Value = response.json().await.expect("JSON echo");
    assert_eq!(echo["method"], "POST");
    assert_eq!(
        echo["uri"],
        "/lambda-url/connect-session/api/nango-session?a=1&b=%2F"
    );
    assert_eq!(echo["userId"], "demo-user");
    assert_eq!(echo["contentType"], "application/json");
    assert_eq!(echo["body"], r#"{"k":"v"}"#);
}

#[tokio::test]
async fn gateway_sends_other_paths_to_analyze_api() {
    let lambda_watch_url = serve(Router::new().fallback(echo)).await;
    let gateway_url = start_gateway(&lambda_watch_url).await;

    let response = reqwest::get(format!("{gateway_url}/api/analyses/123"))
        .await
        .expect("a response");

    let echo: Value = response.json().await.expect("JSON echo");
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["uri"], "/lambda-url/analyze-api/api/analyses/123");
}

#[tokio::test]
async fn gateway_sends_webhook_to_nango_webhook() {
    let lambda_watch_url = serve(Router::new().fallback(echo)).await;
    let gateway_url = start_gateway(&lambda_watch_url).await;
    // The signature covers the exact bytes, so the gateway must not re-encode the body.
    let body = "{\"type\":\"auth\",  \"note\":\"caf\u{e9}\"}\n";

    let response = reqwest::Client::new()
        .post(format!("{gateway_url}/api/nango-webhook"))
        .header("content-type", "application/json")
        .header("x-nango-hmac-sha256", "ab".repeat(32))
        .body(body)
        .send()
        .await
        .expect("a response");

    let echo: Value = response.json().await.expect("JSON echo");
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["uri"], "/lambda-url/nango-webhook/api/nango-webhook");
    assert_eq!(echo["signature"], "ab".repeat(32));
    assert_eq!(echo["body"], body);
}

#[tokio::test]
async fn gateway_returns_502_when_unreachable() {
    // Bind and drop a listener to get a port that nothing listens on.
    let closed_port = bind_loopback(0)
        .await
        .expect("a free port")
        .local_addr()
        .expect("an address")
        .port();
    let gateway_url = start_gateway(&format!("http://127.0.0.1:{closed_port}")).await;

    let response = reqwest::get(format!("{gateway_url}/api/analyses/123"))
        .await
        .expect("a response");

    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body: Value = response.json().await.expect("JSON error");
    assert_eq!(body["error"]["code"], "gateway_error");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("analyze-api")));
}
