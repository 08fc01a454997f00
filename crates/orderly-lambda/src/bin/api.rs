//! `api`: the same axum router as `orderly serve`, behind API Gateway (HTTP API proxy events).

use orderly_lambda::{Error, Functions, init_tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let functions = Functions::load().await?;
    let router = orderly_api::router(functions.app(), functions.accounts().await?);
    lambda_http::run(router).await
}
