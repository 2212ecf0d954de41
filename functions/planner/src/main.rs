use lambda_runtime::{LambdaEvent, service_fn};
use planner::Handler;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let handler = Handler::from_env().await?;
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // Boxed: the planner's future is deep enough to overflow rustc's layout query depth
        // when inlined into this async block.
        Box::pin(handler.handle(event)).await
    }))
    .await
}
