//! `tracestate`: parsing never panics; what parses stays within 32 members,
//! round-trips through its written form, and truncates within any limit; a
//! context read from the wire (which checks its one `tracestate` line only
//! when it is read) answers what the eager parse does.
#![no_main]

use context_runtime::w3c::{TraceState, TRACESTATE_MAX_MEMBERS};
use context_runtime::Propagator;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Several header lines: split the input at newlines.
    let lines: Vec<&str> = text.split('\n').collect();
    if let [line] = lines[..] {
        let cx = Propagator::new()
            .try_extract_values(
                Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                Some(line),
                None,
            )
            .expect("no identity is claimed");
        let eager = TraceState::from_headers([line])
            .ok()
            .filter(|s| !s.is_empty());
        assert_eq!(cx.trace_state(), eager.as_ref(), "{line:?}");
    }
    let Ok(state) = TraceState::from_headers(lines.iter().copied()) else {
        return;
    };
    assert!(state.len() <= TRACESTATE_MAX_MEMBERS);
    let written = state.to_string();
    assert_eq!(state.header_len(), written.len());
    let again: TraceState = written.parse().expect("a written tracestate parses");
    assert_eq!(again, state);
    let limit = data.len() % 600;
    let truncated = state.clone().truncated(limit);
    assert!(truncated.header_len() <= limit);
    let mut updated = state;
    updated.insert("fuzz", "1").expect("a valid member");
    assert!(updated.len() <= TRACESTATE_MAX_MEMBERS);
});
