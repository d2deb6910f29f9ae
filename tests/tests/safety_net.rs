//! The trace-id safety net warns once per process (this file is its own
//! process, so the count is exact).

use std::io::Write;
use std::sync::{Arc, Mutex};

use context_runtime::{Carrier, Context};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn missing_and_invalid_trace_ids_get_fresh_ones_with_a_single_warning() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let mut seen = std::collections::HashSet::new();
        for json in [
            r#"{"tenantId":"t1"}"#,
            r#"{"traceId":"not-hex","tenantId":"t1"}"#,
            r#"{"traceId":"00000000000000000000000000000000"}"#,
            r#"{"traceId":42}"#,
        ] {
            let cx =
                Context::from_carrier(&Carrier::from_json(json).expect("parse")).expect("valid");
            assert!(seen.insert(cx.trace_id()), "every fresh trace id is new");
        }
        // A valid one is kept, and does not warn.
        let kept = Context::from_carrier(
            &Carrier::from_json(r#"{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736"}"#)
                .expect("parse"),
        )
        .expect("valid");
        assert_eq!(
            kept.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    });
    let log = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
    assert_eq!(
        log.matches("without a valid trace id").count(),
        1,
        "exactly one warning per process:\n{log}"
    );
    assert!(log.contains("WARN"), "{log}");
}
