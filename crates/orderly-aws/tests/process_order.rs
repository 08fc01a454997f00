//! The ProcessOrder state machine: its definition, and its task on both of its states.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use orderly_aws::process_order::{CaughtError, TaskInput, run_task};
use orderly_aws::queues::JobMessage;
use orderly_core::memory::MemoryStore;
use orderly_core::ports::{Clock, Consumer, Store, SystemClock};
use orderly_core::saga::Saga;
use orderly_core::{Application, LineRequest, Orderly, PlaceOrder, Placed, RetryPolicy};
use orderly_domain::{CustomerId, OrderId, OrderStatus, ProductId, Quantity};
use orderly_payments::{SimulatedPayments, SimulatedSettings};
use orderly_testkit::staff::Staff;
use serde_json::Value;

#[test]
fn the_definition_retries_every_error_5_s_5_times_doubling_then_flags_the_order() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/aws/process-order.asl.json"
    ))
    .unwrap();
    let machine: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(machine["StartAt"], "ProcessOrder");
    let task = &machine["States"]["ProcessOrder"];
    assert_eq!(task["Type"], "Task");
    assert_eq!(
        task["Parameters"]["FunctionName"],
        "${ProcessOrderFunctionArn}"
    );
    let retry = &task["Retry"][0];
    assert_eq!(retry["ErrorEquals"], serde_json::json!(["States.ALL"]));
    assert_eq!(
        (
            retry["IntervalSeconds"].as_u64(),
            retry["MaxAttempts"].as_u64(),
            retry["BackoffRate"].as_f64()
        ),
        (Some(5), Some(5), Some(2.0))
    );
    let catch = &task["Catch"][0];
    assert_eq!(catch["ErrorEquals"], serde_json::json!(["States.ALL"]));
    assert_eq!(catch["ResultPath"], "$.error");
    let flag = &machine["States"][catch["Next"].as_str().unwrap()];
    assert_eq!(flag["Type"], "Task");
    assert_eq!(flag["Parameters"]["Payload"]["error.$"], "$.error");
    assert_eq!(flag["Parameters"]["Payload"]["job.$"], "$.job");
    assert_eq!(flag["End"], true);
    // Every state the machine can reach exists.
    for (name, state) in machine["States"].as_object().unwrap() {
        if let Some(next) = state["Next"].as_str() {
            assert!(machine["States"].get(next).is_some(), "{name} → {next}");
        }
    }
}

/// A reserved order and its payment job, on the memory store.
async fn payment_job(transient_rate: f64) -> (Orderly, Saga, OrderId, JobMessage) {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let wiring = Application::new(Arc::clone(&store)).with_retry(RetryPolicy::default());
    let app = wiring.orderly();
    app.catalog.load_demo_data().await.unwrap();
    let saga = wiring.saga(Arc::new(SimulatedPayments::new(SimulatedSettings {
        transient_rate,
        ..SimulatedSettings::default()
    })));
    let request = PlaceOrder {
        customer_id: CustomerId::parse("001").unwrap(),
        items: vec![LineRequest {
            product_id: ProductId::parse("001").unwrap(),
            quantity: Quantity::new(1).unwrap(),
        }],
        currency: None,
        shipping_address: None,
        payment_method: None,
    };
    let staff = Staff::admin(&wiring).await.unwrap();
    let Placed::New(order) = staff.place(&app, request, None).await.unwrap() else {
        panic!()
    };
    // The order's next saga step; its notify jobs wait in their own lane.
    let saga_job = |consumer: Consumer| {
        let store = Arc::clone(&store);
        async move {
            let jobs = store
                .claim_jobs(SystemClock.now(), 64, 60_000)
                .await
                .unwrap();
            store.release_leases().await.unwrap();
            jobs.into_iter().find(|j| j.consumer == consumer).unwrap()
        }
    };
    let reserve = saga_job(Consumer::Inventory).await;
    saga.run(&reserve).await;
    let job = saga_job(Consumer::Payment).await;
    let message = JobMessage {
        job_id: job.id,
        consumer: job.consumer.as_str().to_owned(),
        event: job.event,
    };
    (app, saga, order.id, message)
}

#[tokio::test]
async fn the_task_captures_the_payment() {
    let (app, saga, id, job) = payment_job(0.0).await;
    let out = run_task(&saga, TaskInput { job, error: None })
        .await
        .unwrap();
    assert_eq!(out.status, "done");
    assert_eq!(
        app.orders.order(id).await.unwrap().status,
        OrderStatus::Paid
    );
}

#[tokio::test]
async fn a_failing_task_errs_for_step_functions_and_the_catch_flags_the_order() {
    let (app, saga, id, job) = payment_job(1.0).await;
    let failed = run_task(
        &saga,
        TaskInput {
            job: job.clone(),
            error: None,
        },
    )
    .await
    .unwrap_err();
    assert!(
        failed.to_string().contains("simulated authorize outage"),
        "{failed}"
    );
    let caught = CaughtError {
        error: Some("States.TaskFailed".into()),
        cause: Some(failed.to_string()),
    };
    let out = run_task(
        &saga,
        TaskInput {
            job,
            error: Some(caught),
        },
    )
    .await
    .unwrap();
    assert_eq!(out.status, "needs-attention");
    let order = app.orders.order(id).await.unwrap();
    let attention = order.needs_attention.expect("flagged");
    assert_eq!(
        (attention.step.as_str(), attention.attempts),
        ("payment", 6)
    );
    assert!(attention.error.contains("simulated authorize outage"));
    assert_eq!(order.status, OrderStatus::Reserved);
}
