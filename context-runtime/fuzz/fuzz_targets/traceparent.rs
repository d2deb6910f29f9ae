//! `traceparent`: parsing never panics, and what parses is written back as
//! it was read (lowercase hex, version 00) and parses to the same value.
#![no_main]

use context_runtime::w3c::TraceParent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parent) = text.parse::<TraceParent>() {
        let written = parent.to_string();
        let again: TraceParent = written.parse().expect("a written traceparent parses");
        assert_eq!(again, parent);
        assert_eq!(again.to_string(), written);
        let child = parent.child();
        assert_eq!(child.trace_id(), parent.trace_id());
    }
});
