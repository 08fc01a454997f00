//! `api`: the same axum router as `orderly serve`, behind API Gateway (HTTP API proxy events).

use orderly_lambda::{Error, Functions, init_tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let functions = Functions::load().await?;
    let router = orderly_api::router(functions.app(), functions.accounts().await?);
    // Rate limits and the audit log key on the client's address, which API Gateway knows.
    let router = tower::ServiceBuilder::new()
        .map_request(orderly_lambda::with_client_address)
        .service(router);
    lambda_http::run(router).await
}
