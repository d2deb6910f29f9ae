//! The carrier JSON: reading never panics, and a carrier that is accepted
//! gives a context whose own carrier is accepted again, with the same
//! trace, tenant, user and baggage.
#![no_main]

use context_runtime::{Carrier, Context};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(carrier) = Carrier::from_json(text) else {
        return;
    };
    let Ok(cx) = Context::from_carrier(&carrier) else {
        return;
    };
    let json = cx.to_carrier().to_json();
    let again = Carrier::from_json(&json).expect("a written carrier parses");
    let back = Context::from_carrier(&again).expect("a written carrier is valid");
    assert_eq!(back.trace_id(), cx.trace_id());
    assert_eq!(back.tenant(), cx.tenant());
    assert_eq!(back.user(), cx.user());
    assert_eq!(back.baggage(), cx.baggage());
});
