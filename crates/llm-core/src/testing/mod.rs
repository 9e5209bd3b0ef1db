//! Test support shared by every provider crate (feature `test-util`).
//!
//! - [`conformance`]: the checks every provider runs against its own mock upstream, so all
//!   providers keep the same promises (stream invariants, tool-call fragments, usage, error
//!   kinds, `Retry-After`, in-band errors, truncation, timeouts, secret masking).
//! - [`ScriptedServer`]: a raw-TCP HTTP/1.1 upstream on 127.0.0.1 that writes a scripted
//!   response in pieces with pauses, cuts it short or never answers — framing `wiremock`
//!   cannot express. [`CountingServer`]: a keep-alive upstream that counts its open
//!   connections, for connection-pool tests.
//! - [`FaultServer`]: an OpenAI-format upstream that injects a [`Fault`] per request (rate
//!   limits with each `Retry-After` form, 5xx, resets, timeouts, stalls, cuts, malformed and
//!   in-band error frames, keep-alive-only streams, slow drips), by a changeable [`Plan`],
//!   and can refuse connections — for the reliability suite and the soak run.

pub mod conformance;
mod faults;
pub mod openai_format;
mod server;

pub use faults::{Fault, FaultServer, Plan, RetryAfter, answer_text};
pub use server::{CountingServer, Recorded, Script, ScriptedServer, Step};
