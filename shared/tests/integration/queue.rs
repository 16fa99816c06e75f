//! SQS queue against moto server.

use pr_digest::domain::AnalysisId;
use pr_digest::queue::{AnalysisMessage, AnalysisQueue, SqsAnalysisQueue};

use crate::helpers::create_queue;

#[tokio::test]
async fn enqueue_sends_analysis_id() {
    let (client, queue_url) = create_queue().await;
    let queue = SqsAnalysisQueue::new(client.clone(), &queue_url);
    let id = AnalysisId::generate();

    queue.enqueue(&id).await.expect("sent");
    let received = client
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(10)
        .send()
        .await
        .expect("received");

    let messages = received.messages.unwrap_or_default();
    assert_eq!(messages.len(), 1);
    let body = messages[0].body.as_deref().expect("body");
    assert_eq!(AnalysisMessage::parse(body).expect("parsable"), id);
}

#[tokio::test]
async fn enqueue_to_missing_queue_fails() {
    let (client, queue_url) = create_queue().await;
    let missing_url = format!("{}-missing", queue_url);
    let queue = SqsAnalysisQueue::new(client, missing_url);

    let result = queue.enqueue(&AnalysisId::generate()).await;

    assert!(result.is_err());
}
