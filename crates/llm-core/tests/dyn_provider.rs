//! `ChatProvider` works as a trait object: stored in collections, shared through `Arc`,
//! and its futures and streams can be boxed as `'static` and sent to other tasks.

use std::sync::Arc;

use futures_util::{StreamExt, future::BoxFuture};
use llm_core::{
    ChatProvider, ChatRequest, ChatResponse, ChatStream, ErrorKind, MockConfig, MockFailure,
    MockProvider, Result,
};

fn boxed_chat(
    provider: Arc<dyn ChatProvider>,
    request: ChatRequest,
) -> BoxFuture<'static, Result<ChatResponse>> {
    Box::pin(async move { provider.chat(&request).await })
}

#[tokio::test]
async fn heterogeneous_providers_in_one_vec() {
    let providers: Vec<Arc<dyn ChatProvider>> = vec![
        Arc::new(MockProvider::echo("a")),
        Arc::new(Box::new(MockProvider::echo("b")) as Box<dyn ChatProvider>),
        Arc::new(MockProvider::new(
            "broken",
            MockConfig {
                failure: Some(MockFailure::always(ErrorKind::UpstreamServer)),
                ..MockConfig::default()
            },
        )),
    ];
    let names: Vec<&str> = providers.iter().map(|p| p.name()).collect();
    assert_eq!(names, ["mock", "mock", "broken"]);

    let futures: Vec<_> = providers
        .iter()
        .map(|p| boxed_chat(Arc::clone(p), ChatRequest::from("ping")))
        .collect();
    let mut outcomes = Vec::new();
    for future in futures {
        // Futures are Send + 'static: they can run on another task.
        outcomes.push(tokio::spawn(future).await.unwrap());
    }
    assert_eq!(outcomes[0].as_ref().unwrap().model, "a");
    assert_eq!(outcomes[1].as_ref().unwrap().model, "b");
    assert_eq!(
        outcomes[2].as_ref().unwrap_err().kind(),
        ErrorKind::UpstreamServer
    );
}

#[tokio::test]
async fn streams_move_to_other_tasks() {
    let provider: Arc<dyn ChatProvider> = Arc::new(MockProvider::echo("m"));
    let stream: ChatStream = provider
        .stream(&ChatRequest::from("one two"))
        .await
        .unwrap();
    let text = tokio::spawn(async move {
        stream
            .filter_map(
                |item| async move { item.ok().and_then(|c| c.content().map(str::to_owned)) },
            )
            .collect::<String>()
            .await
    })
    .await
    .unwrap();
    assert_eq!(text, "one two");
}
