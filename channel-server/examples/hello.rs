//! A hello-world axum server: the baseline of the "signed answers per second" benchmark
//! (`benches/updates.rs`). Same axum and tokio as the channel, tokio's default multi-threaded
//! runtime (one worker per core), no middleware.
//!
//! ```text
//! cargo run --release -p channel-server --example hello -- [127.0.0.1:0]
//! ```
//! prints `listening on http://ADDR` and answers `GET /` with `Hello, World!`.

use std::io::Write;

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{}", listener.local_addr()?)?;
        out.flush()?;
    }
    let app = Router::new().route("/", get(|| async { "Hello, World!" }));
    axum::serve(listener, app).await
}
