//! `payment-worker`: captures, refunds and voids payments for the jobs on the payment FIFO queue.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use orderly_aws::worker::Worker;
use orderly_lambda::{Error, Functions, batch_response, deliveries, init_tracing, required};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let functions = Functions::load().await?;
    let worker = Worker::new(
        functions.saga(),
        &functions.aws,
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
