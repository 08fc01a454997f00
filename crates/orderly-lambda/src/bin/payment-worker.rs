//! `payment-worker`: hands each job on the payment FIFO queue to the `ProcessOrder` state machine
//! and waits for it to settle, so the order's next payment job waits its turn.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use orderly_aws::process_order::{ProcessOrder, Runner};
use orderly_aws::worker::Worker;
use orderly_lambda::{Error, batch_response, deliveries, init_tracing, required};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let machine = ProcessOrder::new(&aws, required("ORDERLY_PROCESS_ORDER_ARN")?);
    let worker = Worker::with_runner(
        Runner::StateMachine(machine),
        &aws,
        required("ORDERLY_QUEUE_URL")?,
    );
    let worker = &worker;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(batch_response(
            worker.handle(deliveries(event.payload)).await,
        ))
    }))
    .await
}
