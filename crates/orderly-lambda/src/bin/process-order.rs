//! `process-order`: the task of the `ProcessOrder` state machine — runs a payment step (an error
//! makes Step Functions retry it), or, after the machine's `Catch`, flags the order for staff.

use lambda_runtime::{LambdaEvent, service_fn};
use orderly_aws::process_order::{TaskInput, TaskOutput, run_task};
use orderly_lambda::{Error, Functions, init_tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let functions = Functions::load().await?;
    let saga = functions.saga();
    let saga = &saga;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<TaskInput>| async move {
            Ok::<TaskOutput, Error>(run_task(saga, event.payload).await?)
        },
    ))
    .await
}
