//! The worker invoker against a fake invoke endpoint.

use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use local_stack::event_source::{InvokeError, WorkerInvoker};
use local_stack::server::bind_loopback;

const INVOKE_PATH: &str = "/2015-03-31/functions/worker/invocations";

/// Serves `router` on a free loopback port and returns the invoke URL.
async fn serve(router: Router) -> String {
    let listener = bind_loopback(0).await.expect("a free loopback port");
    let address = listener.local_addr().expect("a bound address");
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serves");
    });
    format!("http://{address}{INVOKE_PATH}")
}

fn event(ids: &[&str]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = ids
        .iter()
        .map(|id| {
            let mut record = SqsMessage::default();
            record.message_id = Some((*id).to_owned());
            record
        })
        .collect();
    event
}

#[tokio::test]
async fn invoke_returns_reported_failures() {
    let url = serve(Router::new().route(
        INVOKE_PATH,
        post(|| async { r#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"# }),
    ))
    .await;
    let invoker = WorkerInvoker::new(url, Duration::from_secs(5)).expect("client builds");

    let failed = invoker
        .invoke(&event(&["a", "b"]))
        .await
        .expect("a batch response");

    assert_eq!(failed, vec!["b"]);
}

#[tokio::test]
async fn invoke_reads_function_error() {
    let url = serve(Router::new().route(
        INVOKE_PATH,
        post(|| async {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"errorType":"BatchError","errorMessage":"store unreachable"}"#,
            )
        }),
    ))
    .await;
    let invoker = WorkerInvoker::new(url, Duration::from_secs(5)).expect("client builds");

    let error = invoker
        .invoke(&event(&["a"]))
        .await
        .expect_err("a function error");

    assert!(
        matches!(&error, InvokeError::Function { error_type, message } if error_type == "BatchError" && message == "store unreachable"),
        "{error:?}"
    );
}

#[tokio::test]
async fn invoke_reports_other_status() {
    let url = serve(Router::new().route(
        INVOKE_PATH,
        post(|| async { (StatusCode::BAD_GATEWAY, "upstream down") }),
    ))
    .await;
    let invoker = WorkerInvoker::new(url, Duration::from_secs(5)).expect("client builds");

    let error = invoker
        .invoke(&event(&["a"]))
        .await
        .expect_err("a status error");

    assert!(
        matches!(&error, InvokeError::Status { status: 502, body } if body == "upstream down"),
        "{error:?}"
    );
}

#[tokio::test]
async fn invoke_retries_until_endpoint_listens() {
    // Reserve a port, release it, and start the endpoint there after a delay.
    let port = bind_loopback(0)
        .await
        .expect("a free port")
        .local_addr()
        .expect("an address")
        .port();
    let url = format!("http://127.0.0.1:{port}{INVOKE_PATH}");
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let listener = bind_loopback(port)
            .await
            .expect("the reserved port is free");
        let router = Router::new().route(INVOKE_PATH, post(|| async { "{}" }));
        axum::serve(listener, router).await.expect("serves");
    });
    let invoker = WorkerInvoker::new(url, Duration::from_secs(10)).expect("client builds");

    let failed = invoker
        .invoke(&event(&["a"]))
        .await
        .expect("a batch response");

    assert!(failed.is_empty());
}

#[tokio::test]
async fn invoke_gives_up_after_timeout() {
    let port = bind_loopback(0)
        .await
        .expect("a free port")
        .local_addr()
        .expect("an address")
        .port();
    let url = format!("http://127.0.0.1:{port}{INVOKE_PATH}");
    let invoker = WorkerInvoker::new(url, Duration::from_secs(2)).expect("client builds");
    let started = Instant::now();

    let error = invoker
        .invoke(&event(&["a"]))
        .await
        .expect_err("no endpoint");

    assert!(matches!(error, InvokeError::Connect { .. }), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}
