//! `bootstrap`: every Orderly Lambda function; `ORDERLY_FUNCTION` says which this process is.

use orderly_lambda::functions::Function;
use orderly_lambda::{Error, init_tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    Function::from_env()?.run().await
}
