//! The SNS notifier against the local AWS emulator: a staff alert published to a topic reaches
//! a queue subscribed to it; a text message is published to a phone number.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use orderly_aws::AwsSettings;
use orderly_aws::notify::SnsNotifier;
use orderly_core::ports::{Category, Message, Notifier, NotifyError, Recipient};
use orderly_store_dynamodb::testing::endpoint;
use serde_json::Value;

fn message(recipient: Recipient, subject: &str, text: &str) -> Message {
    Message {
        dedupe_key: format!("e-{}/shipped/{}", uuid::Uuid::new_v4(), recipient.channel()),
        recipient,
        subject: subject.to_owned(),
        text: text.to_owned(),
        html: String::new(),
        category: Category::Transactional,
    }
}

#[tokio::test]
async fn a_staff_alert_reaches_the_topics_subscribers_with_its_unicode_intact() {
    let config = AwsSettings::emulator(&endpoint()).load().await;
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let name = format!("alerts-{}", uuid::Uuid::new_v4());
    let topic = sns.create_topic().name(&name).send().await.unwrap();
    let topic = topic.topic_arn().unwrap().to_owned();
    let queue = sqs.create_queue().queue_name(&name).send().await.unwrap();
    let queue_url = queue.queue_url().unwrap().to_owned();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .attributes("RawMessageDelivery", "false")
        .send()
        .await
        .unwrap();

    let notifier = SnsNotifier::new(&config);
    assert!(notifier.reaches(&Recipient::Topic(topic.clone())));
    assert!(!notifier.reaches(&Recipient::Email("a@example.com".into())));
    let alert = message(
        Recipient::Topic(topic.clone()),
        "New order 0193: ¥1,000 🎁",
        "Customer: 山田 太郎 👩\u{200d}👩\u{200d}👧",
    );
    notifier.send(&alert).await.unwrap();

    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .wait_time_seconds(5)
        .send()
        .await
        .unwrap();
    let body: Value = serde_json::from_str(received.messages()[0].body().unwrap()).unwrap();
    assert_eq!(body["Subject"], "New order 0193: ?1,000 ?");
    assert_eq!(
        body["Message"],
        "New order 0193: ¥1,000 🎁\n\nCustomer: 山田 太郎 👩\u{200d}👩\u{200d}👧"
    );
    assert_eq!(
        body["MessageAttributes"]["dedupeKey"]["Value"],
        alert.dedupe_key.as_str()
    );
}

#[tokio::test]
async fn a_text_message_is_published_to_the_phone_number() {
    let config = AwsSettings::emulator(&endpoint()).load().await;
    let notifier = SnsNotifier::new(&config);
    // A number no other test uses, to find this message among the emulator's.
    let phone = format!("+1555{:07}", uuid::Uuid::new_v4().as_u128() % 10_000_000);
    let sms = message(
        Recipient::Sms(phone.clone()),
        "",
        "Orderly Shop: your order has shipped with DHL, tracking JD0146 📦",
    );
    notifier.send(&sms).await.unwrap();
    let data: Value = reqwest::get(format!("{}/moto-api/data.json", endpoint()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sent: Vec<&Value> = data["sns"]["SMS"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["phone_number"] == phone.as_str())
        .collect();
    assert_eq!(sent.len(), 1, "{data}");
    assert_eq!(sent[0]["message"], sms.text.as_str());

    // SNS sends no e-mail to addresses: refused for good, never retried.
    let email = message(Recipient::Email("a@example.com".into()), "s", "t");
    assert!(matches!(
        notifier.send(&email).await,
        Err(NotifyError::Permanent(_))
    ));
}
