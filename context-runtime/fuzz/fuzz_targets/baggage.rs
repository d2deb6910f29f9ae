//! `baggage`: parsing never panics and stays within the limits, and
//! parse ∘ display ∘ parse = parse, both for text and for raw header bytes.
#![no_main]

use context_runtime::w3c::{Baggage, BAGGAGE_MAX_BYTES, BAGGAGE_MAX_MEMBERS};
use libfuzzer_sys::fuzz_target;

fn check(baggage: &Baggage) {
    assert!(baggage.len() <= BAGGAGE_MAX_MEMBERS);
    let written = baggage.to_string();
    assert!(written.len() <= BAGGAGE_MAX_BYTES);
    let again: Baggage = written.parse().unwrap_or_default();
    assert_eq!(
        &again, baggage,
        "parse(display(parse(x))) != parse(x) for {written:?}"
    );
    assert_eq!(again.to_string(), written);
}

fuzz_target!(|data: &[u8]| {
    // Raw header lines, split at newlines, as an HTTP server hands them over.
    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let from_bytes = Baggage::from_header_bytes(lines.iter().copied());
    check(&from_bytes);

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines: Vec<&str> = text.split('\n').collect();
    let baggage = Baggage::from_headers(lines.iter().copied());
    check(&baggage);
    // Bytes and text read the same.
    assert_eq!(from_bytes, baggage);

    if let Ok(strict) = Baggage::parse_strict(text) {
        check(&strict);
        assert_eq!(strict, text.parse::<Baggage>().unwrap_or_default());
    }
});
