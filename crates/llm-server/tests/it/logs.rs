//! Every log line of this test binary, captured at debug level (all targets) and scanned for
//! planted secrets as it is written.
//!
//! Every secret the suite uses contains [`PLANTED`]; [`Gateway::start`](crate::support::Gateway)
//! installs the capture, and tests end with [`assert_no_secret_logged`]. Because the capture
//! is process-wide, a leak by any test fails the next check of every other test too; and
//! so that no leak can go unseen (say, by the last test to finish), the capture prints the
//! offending line and aborts the test process at once.

use std::{
    io::Write,
    sync::{
        Arc, Once, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
};

/// The marker in every planted secret (keys, gateway keys). It must never be logged, nor
/// appear in a response, a status or an error.
pub(crate) const PLANTED: &str = "PLANTED";

#[derive(Default)]
struct Scan {
    lines: AtomicU64,
    leaks: AtomicU64,
}

static SCAN: OnceLock<Arc<Scan>> = OnceLock::new();
static INSTALL: Once = Once::new();

struct Writer(Arc<Scan>);

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.lines.fetch_add(1, Ordering::Relaxed);
        if text.contains(PLANTED) {
            self.0.leaks.fetch_add(1, Ordering::Relaxed);
            std::io::stderr().write_all(
                format!("a planted secret reached a log line; aborting the suite: {text}")
                    .as_bytes(),
            )?;
            std::process::abort();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Install the capture (once per process).
pub(crate) fn install() {
    INSTALL.call_once(|| {
        let scan = Arc::clone(SCAN.get_or_init(Arc::default));
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || Writer(Arc::clone(&scan)))
            .finish();
        // Another global subscriber would make the scan blind: fail loudly.
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
}

/// Assert that log lines were captured and none carried a planted secret.
pub(crate) fn assert_no_secret_logged() {
    let scan = SCAN
        .get()
        .expect("the capture is installed by Gateway::start");
    assert!(
        scan.lines.load(Ordering::Relaxed) > 0,
        "the capture saw no log line at all"
    );
    assert_eq!(
        scan.leaks.load(Ordering::Relaxed),
        0,
        "a planted secret reached a log line"
    );
}

/// Assert that a response body, status output or error text carries no planted secret.
pub(crate) fn assert_clean(what: &str, text: &str) {
    assert!(
        !text.contains(PLANTED),
        "{what} carries a planted secret: {text}"
    );
}

/// The capture is not blind: a request through the gateway adds debug-level lines.
#[tokio::test]
async fn the_capture_sees_the_gateways_debug_lines() {
    let gateway = crate::support::Gateway::start(
        crate::support::mock_factory(),
        llm_server::GatewayOptions::default(),
    )
    .await;
    let scan = SCAN.get().unwrap();
    let before = scan.lines.load(Ordering::Relaxed);
    let response = gateway
        .post_chat(&crate::support::chat_body("mock-echo", "hi", false))
        .await;
    assert_eq!(response.status(), 200);
    tracing::debug!(target: "llm_server", "a debug line from the test");
    assert!(scan.lines.load(Ordering::Relaxed) > before);
    assert_no_secret_logged();
}
