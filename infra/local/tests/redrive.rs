//! `redrive` against moto server: dead-lettered messages return to the analysis queue.

use std::process::Command;

fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!(
            "AWS_ENDPOINT_URL is not set: run the tests with `make test`, which starts moto server"
        )
    })
}

async fn sqs() -> aws_sdk_sqs::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await;
    aws_sdk_sqs::Client::new(&config)
}

async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    let name = format!("{name}-{}", uuid::Uuid::new_v4().simple());
    sqs.create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("queue created")
        .queue_url
        .expect("queue URL")
}

async fn bodies(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<String> {
    let received = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .send()
        .await
        .expect("received");
    let mut bodies: Vec<String> = received
        .messages
        .unwrap_or_default()
        .iter()
        .filter_map(|m| m.body().map(str::to_owned))
        .collect();
    bodies.sort();
    bodies
}

#[tokio::test]
async fn redrive_moves_every_message() {
    let sqs = sqs().await;
    let dead_letters = create_queue(&sqs, "dlq").await;
    let queue = create_queue(&sqs, "analyses").await;
    let sent: Vec<String> = (0..3)
        .map(|n| format!("{{\"analysisId\":\"00000000-0000-4000-8000-00000000000{n}\"}}"))
        .collect();
    for body in &sent {
        sqs.send_message()
            .queue_url(&dead_letters)
            .message_body(body)
            .send()
            .await
            .expect("sent");
    }

    let output = Command::new(env!("CARGO_BIN_EXE_redrive"))
        .env("DEAD_LETTER_QUEUE_URL", &dead_letters)
        .env("ANALYSIS_QUEUE_URL", &queue)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .expect("redrive runs");

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "moved 3 messages back to the analysis queue"
    );
    assert_eq!(bodies(&sqs, &queue).await, sent);
    assert!(bodies(&sqs, &dead_letters).await.is_empty());
}
