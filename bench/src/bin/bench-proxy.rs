//! The one-hop floor: a bare pass-through HTTP/1.1 proxy in a few lines of hyper, the cost
//! of one extra hop that the gateway is judged against.
//!
//! ```text
//! bench-proxy --port 9100 --upstream 127.0.0.1:9000
//! ```
#![expect(clippy::print_stdout, reason = "reports its address")]

use std::net::SocketAddr;

use hyper::{Request, body::Incoming, service::service_fn};
use hyper_util::{
    client::legacy::Client,
    rt::{TokioExecutor, TokioIo},
};

/// On the gateway's runtime choice ([`llm_server::runtime`]): one CPU, one thread.
fn main() -> anyhow::Result<()> {
    llm_server::runtime()?.block_on(proxy())
}

async fn proxy() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = bench::arg(&args, "--port", 9100)?;
    let upstream: SocketAddr = bench::arg(&args, "--upstream", "127.0.0.1:9000".parse()?)?;
    let client: Client<_, Incoming> = Client::builder(TokioExecutor::new()).build_http();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("bench-proxy listening on {}", listener.local_addr()?);
    loop {
        let (socket, _) = listener.accept().await?;
        socket.set_nodelay(true)?;
        let client = client.clone();
        tokio::spawn(async move {
            let service = service_fn(move |mut request: Request<Incoming>| {
                let client = client.clone();
                async move {
                    let path = request
                        .uri()
                        .path_and_query()
                        .map_or("/", |p| p.as_str())
                        .to_owned();
                    *request.uri_mut() = format!("http://{upstream}{path}").parse()?;
                    let response = client.request(request).await?;
                    Ok::<_, anyhow::Error>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(socket), service)
                .await;
        });
    }
}
