//! `notify-worker`: runs the notify jobs of the notifier's FIFO queue — the same templates and
//! the same once-per-recipient records as `orderly serve`, delivered through SNS (staff topic,
//! SMS) and, when `ORDERLY_SMTP_HOST` is set, SMTP (customer e-mail; Amazon SES speaks it).
//! A message that keeps failing is recorded for staff; the order never waits for it.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use orderly_aws::worker::Worker;
use orderly_lambda::{Error, Functions, batch_response, deliveries, init_tracing, required};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let functions = Functions::load().await?;
    let saga = functions.notifier_saga()?;
    let worker = Worker::new(saga, &functions.aws, required("ORDERLY_QUEUE_URL")?);
    let worker = &worker;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(batch_response(
            worker.handle(deliveries(event.payload)).await,
        ))
    }))
    .await
}
