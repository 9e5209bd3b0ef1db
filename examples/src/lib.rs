//! Runnable examples of LLM Factory; see `examples/` and run one with `cargo run -p examples --example <name>`.
