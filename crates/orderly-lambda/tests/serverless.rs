//! The serverless runtime end to end on the local AWS emulator: the API on DynamoDB, the outbox
//! relay reading the table's real stream, the bus and its rules, the FIFO queues and the workers
//! fed with the messages SQS really delivers.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use lambda_http::request::LambdaRequest;
use orderly_aws::AwsSettings;
use orderly_aws::bus::EventBus;
use orderly_aws::notify::SnsNotifier;
use orderly_aws::queues::JobQueues;
use orderly_aws::relay::Relay;
use orderly_aws::worker::{Delivery, Worker};
use orderly_core::access::Cancel;
use orderly_core::notify::NotifySettings;
use orderly_core::ports::{Recipient, Store};
use orderly_core::{Application, RetryPolicy};
use orderly_domain::{EventKind, OrderStatus, ProductId};
use orderly_payments::{SimulatedPayments, SimulatedSettings};
use orderly_store_dynamodb::testing::{TestTable, endpoint};
use orderly_testkit::fixtures;
use orderly_testkit::staff::Staff;
use serde_json::{Value, json};
use tower::ServiceExt;

/// An HTTP API payload 2.0 event, as API Gateway sends it.
fn proxy_event(method: &str, path: &str, body: Option<&str>) -> Value {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "abc123.execute-api.us-east-1.amazonaws.com"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com", "domainPrefix": "abc123",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "curl/8.5.0"},
            "requestId": "JKJaXmPLvHcESHA=", "routeKey": "$default", "stage": "$default",
            "time": "22/Nov/2026:10:15:30 +0000", "timeEpoch": 1795000530000u64
        },
        "body": body,
        "isBase64Encoded": false
    })
}

/// Calls an AWS JSON-protocol API of the emulator directly (the stream API has no client here).
async fn aws_json(target: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(endpoint())
        .header("X-Amz-Target", target)
        .header("Content-Type", "application/x-amz-json-1.0")
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{target}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

/// Reads the table's stream from the start, batch after batch, as the relay's trigger would.
struct StreamReader {
    iterators: Vec<String>,
}

impl StreamReader {
    async fn open(table: &str) -> StreamReader {
        let described = aws_json(
            "DynamoDB_20120810.DescribeTable",
            json!({"TableName": table}),
        )
        .await;
        let arn = described["Table"]["LatestStreamArn"]
            .as_str()
            .unwrap()
            .to_owned();
        let stream = aws_json(
            "DynamoDBStreams_20120810.DescribeStream",
            json!({"StreamArn": arn}),
        )
        .await;
        let mut iterators = Vec::new();
        for shard in stream["StreamDescription"]["Shards"].as_array().unwrap() {
            let it = aws_json(
                "DynamoDBStreams_20120810.GetShardIterator",
                json!({"StreamArn": arn, "ShardId": shard["ShardId"], "ShardIteratorType": "TRIM_HORIZON"}),
            )
            .await;
            iterators.push(it["ShardIterator"].as_str().unwrap().to_owned());
        }
        StreamReader { iterators }
    }

    /// The new images of the items inserted since the last call.
    async fn inserted(&mut self) -> Vec<Value> {
        let mut images = Vec::new();
        for iterator in &mut self.iterators {
            let out = aws_json(
                "DynamoDBStreams_20120810.GetRecords",
                json!({"ShardIterator": iterator}),
            )
            .await;
            for record in out["Records"].as_array().unwrap() {
                if record["eventName"] == "INSERT" {
                    images.push(record["dynamodb"]["NewImage"].clone());
                }
            }
            if let Some(next) = out["NextShardIterator"].as_str() {
                *iterator = next.to_owned();
            }
        }
        images
    }
}

struct Aws {
    sqs: aws_sdk_sqs::Client,
    queues: HashMap<&'static str, String>,
    notify_queue: String,
    admin_inbox: String,
    bus: String,
    topic: String,
}

async fn queue(sqs: &aws_sdk_sqs::Client, name: &str, fifo: bool, dlq_arn: Option<&str>) -> String {
    let mut create = sqs.create_queue().queue_name(name);
    if fifo {
        create = create.attributes(QueueAttributeName::FifoQueue, "true");
    }
    if let Some(arn) = dlq_arn {
        create = create.attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": arn, "maxReceiveCount": 10}).to_string(),
        );
    }
    create.send().await.unwrap().queue_url.unwrap()
}

async fn arn_of(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    out.attributes.unwrap()[&QueueAttributeName::QueueArn].clone()
}

/// Queues, bus, rule and topic for one test, named apart from every other test's.
async fn infrastructure(config: &aws_config::SdkConfig) -> Aws {
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    let sqs = aws_sdk_sqs::Client::new(config);
    let dlq = queue(&sqs, &format!("orderly-{suffix}-dlq.fifo"), true, None).await;
    let dlq_arn = arn_of(&sqs, &dlq).await;
    let mut queues = HashMap::new();
    for consumer in ["inventory", "payment", "notify"] {
        queues.insert(
            consumer,
            queue(
                &sqs,
                &format!("orderly-{suffix}-{consumer}.fifo"),
                true,
                Some(&dlq_arn),
            )
            .await,
        );
    }
    // The bus rule's queue, where the notification detail types arrive as events (the notify
    // jobs have their own queue above).
    let notify_queue = queue(
        &sqs,
        &format!("orderly-{suffix}-bus-notify.fifo"),
        true,
        Some(&dlq_arn),
    )
    .await;
    let notify_arn = arn_of(&sqs, &notify_queue).await;
    sqs.set_queue_attributes()
        .queue_url(&notify_queue)
        .attributes(QueueAttributeName::ContentBasedDeduplication, "true")
        .send()
        .await
        .unwrap();

    let events = aws_sdk_eventbridge::Client::new(config);
    let bus = format!("orderly-{suffix}");
    events.create_event_bus().name(&bus).send().await.unwrap();
    let rule = format!("orderly-{suffix}-notify");
    events
        .put_rule()
        .name(&rule)
        .event_bus_name(&bus)
        .event_pattern(
            json!({
                "source": ["ecommerce.order", "ecommerce.inventory", "ecommerce.payment"],
                "detail-type": ["OrderPlaced", "OrderShipped", "OrderDelivered", "OrderCanceled", "PaymentFailed", "RefundIssued", "OrderNeedsAttention"]
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule(&rule)
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("notify")
                .arn(notify_arn)
                .sqs_parameters(
                    aws_sdk_eventbridge::types::SqsParameters::builder()
                        .message_group_id("notifications")
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let sns = aws_sdk_sns::Client::new(config);
    let topic = sns
        .create_topic()
        .name(format!("orderly-{suffix}-admin"))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let admin_inbox = queue(&sqs, &format!("orderly-{suffix}-admin-inbox"), false, None).await;
    let inbox_arn = arn_of(&sqs, &admin_inbox).await;
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(inbox_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();
    Aws {
        sqs,
        queues,
        notify_queue,
        admin_inbox,
        bus,
        topic,
    }
}

/// Receives what SQS delivers now, as the Lambda trigger would.
async fn receive(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<(Delivery, String)> {
    let out = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap();
    let messages = out.messages.unwrap_or_default();
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: HashMap<String, String> = m
                .attributes
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.as_str().to_owned(), v))
                .collect();
            json!({
                "messageId": m.message_id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "attributes": attributes,
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q.fifo",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    let event: SqsEvent = serde_json::from_value(json!({ "Records": records })).unwrap();
    orderly_lambda::deliveries(event)
        .into_iter()
        .zip(messages)
        .map(|(d, m)| (d, m.receipt_handle.unwrap()))
        .collect()
}

/// Every body waiting on a queue, each message deleted once read.
async fn drain(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return bodies;
        }
        for m in messages {
            bodies.push(m.body.unwrap_or_default());
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

/// Runs a worker over one receive of its queue, deleting what it finished (as Lambda does with
/// batch item failures). Returns how many messages it handled.
async fn work(sqs: &aws_sdk_sqs::Client, url: &str, worker: &Worker) -> usize {
    let received = receive(sqs, url).await;
    let count = received.len();
    let (deliveries, receipts): (Vec<_>, Vec<_>) = received.into_iter().unzip();
    let ids: Vec<String> = deliveries.iter().map(|d| d.message_id.clone()).collect();
    let failed = worker.handle(deliveries).await;
    for (id, receipt) in ids.iter().zip(receipts) {
        if !failed.contains(id) {
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(receipt)
                .send()
                .await
                .unwrap();
        }
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_goes_from_the_api_to_paid_through_stream_bus_and_fifo_queues() {
    let table = TestTable::create().await.unwrap();
    let config = AwsSettings::emulator(&endpoint()).load().await;
    let aws = infrastructure(&config).await;
    let store: Arc<dyn Store> = Arc::new(table.store.clone());
    let wiring = Application::new(Arc::clone(&store)).with_retry(RetryPolicy {
        interval: Duration::from_secs(1),
        max_attempts: 3,
        backoff_rate: 2.0,
    });
    let app = wiring.orderly();
    app.catalog.load_demo_data().await.unwrap();
    let saga = Arc::new(wiring.saga(Arc::new(SimulatedPayments::new(
        SimulatedSettings::default(),
    ))));
    let relay = Relay::new(
        EventBus::new(&config, aws.bus.clone()),
        JobQueues::new(&config, aws.queues.clone()),
    );
    // The notify worker: the same templates as `orderly serve`, staff alerts to the SNS topic.
    let sns = Arc::new(SnsNotifier::new(&config));
    let notifying = Application::new(Arc::clone(&store)).with_notifier(
        Arc::new(orderly_notify::Routes {
            email: None,
            sms: Some(sns.clone()),
            topic: Some(sns),
        }),
        Arc::new(orderly_notify::FileTemplates::load().unwrap()),
        NotifySettings {
            shop_name: "Orderly".into(),
            staff: vec![Recipient::Topic(aws.topic.clone())],
        },
    );
    let notifier = Worker::new(
        Arc::new(notifying.saga(Arc::new(SimulatedPayments::new(
            SimulatedSettings::default(),
        )))),
        &config,
        aws.queues["notify"].clone(),
    );
    let inventory = Worker::new(Arc::clone(&saga), &config, aws.queues["inventory"].clone());
    let payment = Worker::new(Arc::clone(&saga), &config, aws.queues["payment"].clone());
    let mut stream = StreamReader::open(table.store.table()).await;
    let mut reader_images = Vec::new();

    // The API, as API Gateway calls it: the reference order in an HTTP API proxy event.
    // The shop's backend calls with an API key.
    let accounts = Arc::new(
        wiring
            .accounts(orderly_core::accounts::AuthSettings::default(), None)
            .await
            .unwrap(),
    );
    let (_, api_key) = accounts
        .create_key("backend", &[orderly_auth::Permission::OrdersPlace], "test")
        .await
        .unwrap();
    let router = orderly_api::router(app.clone(), accounts);
    let event = proxy_event(
        "POST",
        "/v1/orders",
        Some(
            r#"{"customerId":"001","items":[{"productId":"001","quantity":1},{"productId":"002","quantity":1}]}"#,
        ),
    );
    let mut event = event;
    event["headers"]["authorization"] = json!(format!("Bearer {api_key}"));
    let request: http::Request<lambda_http::Body> = serde_json::from_value::<LambdaRequest>(event)
        .unwrap()
        .into();
    let (parts, body) = request.into_parts();
    let response = router
        .oneshot(http::Request::from_parts(
            parts,
            axum::body::Body::from(body.as_ref().to_vec()),
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let placed: Value = serde_json::from_slice(&bytes).unwrap();
    let order = app
        .orders
        .order(orderly_domain::OrderId::parse(placed["id"].as_str().unwrap()).unwrap())
        .await
        .unwrap();

    // Relay → inventory queue → worker; relay → payment queue → worker.
    let images = stream.inserted().await;
    reader_images.extend(images.clone());
    let sent = relay.relay(&images).await.unwrap();
    assert_eq!(
        (sent.events, sent.jobs),
        (1, 2),
        "inventory and notify jobs"
    );
    assert_eq!(
        work(&aws.sqs, &aws.queues["inventory"], &inventory).await,
        1
    );
    assert_eq!(
        app.orders.order(order.id).await.unwrap().status,
        OrderStatus::Reserved
    );
    let sent = relay.relay(&stream.inserted().await).await.unwrap();
    assert_eq!((sent.events, sent.jobs), (1, 1));
    assert_eq!(work(&aws.sqs, &aws.queues["payment"], &payment).await, 1);
    let paid = app.orders.order(order.id).await.unwrap();
    assert_eq!(paid.status, OrderStatus::Paid);
    relay.relay(&stream.inserted().await).await.unwrap();

    // The bus rule delivered OrderPlaced to the rule's queue.
    let kinds: Vec<String> = drain(&aws.sqs, &aws.notify_queue)
        .await
        .iter()
        .map(|body| {
            serde_json::from_str::<Value>(body).unwrap()["detail-type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        kinds,
        ["OrderPlaced"],
        "only the rule's detail types reach the notification queue"
    );
    // The notify job of OrderPlaced: the staff alert from the new-order template, on the topic.
    assert_eq!(work(&aws.sqs, &aws.queues["notify"], &notifier).await, 1);
    let alerts = drain(&aws.sqs, &aws.admin_inbox).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(
        alerts[0].starts_with(&format!("New order {}: $279.98\n", order.id))
            && alerts[0].contains("Customer: Alice Johnson <alice.johnson@example.com> (id 001)"),
        "{alerts:?}"
    );

    // Cancel: stock comes back at once, the refund goes through the payment queue.
    let staff = Staff::admin(&wiring).await.unwrap();
    let permit = staff.permit::<Cancel>(&app, order.id).await.unwrap();
    app.orders
        .cancel(permit, Some("changed mind".into()))
        .await
        .unwrap();
    assert_eq!(
        app.catalog
            .stock(&ProductId::parse("001").unwrap())
            .await
            .unwrap()
            .available,
        150
    );
    let images = stream.inserted().await;
    let sent = relay.relay(&images).await.unwrap();
    assert_eq!(sent.jobs, 2, "payment and notify: {images:#?}");
    assert_eq!(work(&aws.sqs, &aws.queues["payment"], &payment).await, 1);
    relay.relay(&stream.inserted().await).await.unwrap();
    let events: Vec<EventKind> = store
        .order_events(order.id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        events,
        [
            EventKind::OrderPlaced,
            EventKind::InventoryReserved,
            EventKind::PaymentCaptured,
            EventKind::OrderCanceled,
            EventKind::RefundIssued
        ]
    );
    // The canceled and refunded messages are for the customer's e-mail, which this notifier
    // does not reach: their jobs complete without sending.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while store.pending_jobs().await.unwrap() > 0 {
        assert!(std::time::Instant::now() < deadline, "notify jobs left");
        work(&aws.sqs, &aws.queues["notify"], &notifier).await;
    }
    assert!(drain(&aws.sqs, &aws.admin_inbox).await.is_empty());
    assert_eq!(
        store.pending_jobs().await.unwrap(),
        0,
        "every job item is done"
    );

    // A redelivered message changes nothing. (Last: the emulator's stream loses the records
    // written after a canceled transaction, which this redelivery causes; DynamoDB does not.)
    let job_image = reader_images
        .iter()
        .find(|i| i["sk"]["S"].as_str().unwrap().starts_with("JOB#"))
        .unwrap();
    let again = Delivery {
        message_id: "again".into(),
        body: json!({"jobId": job_image["job_id"]["N"].as_str().unwrap().parse::<i64>().unwrap(), "consumer": "inventory", "event": serde_json::from_str::<Value>(job_image["payload"]["S"].as_str().unwrap()).unwrap()}).to_string(),
        receive_count: 2,
        receipt_handle: None,
        group: Some(order.id.to_string()),
    };
    let before = app.orders.order(order.id).await.unwrap();
    assert!(inventory.handle(vec![again.clone()]).await.is_empty());
    assert_eq!(app.orders.order(order.id).await.unwrap(), before);
    assert_eq!(
        app.catalog
            .stock(&ProductId::parse("001").unwrap())
            .await
            .unwrap(),
        orderly_domain::StockLevel {
            available: 150,
            reserved: 0
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_takes_more_than_ten_events_per_batch() {
    let config = AwsSettings::emulator(&endpoint()).load().await;
    let aws = infrastructure(&config).await;
    let bus = EventBus::new(&config, aws.bus.clone());
    let order = fixtures::order("001", &[("001", 1)]);
    let events: Vec<_> = (0..23)
        .map(|_| {
            orderly_domain::Event::about(&order, EventKind::OrderPlaced, &fixtures::stamp(), None)
        })
        .collect();
    bus.publish(&events).await.unwrap();
    let received = drain(&aws.sqs, &aws.notify_queue).await.len();
    assert_eq!(received, 23);
}
