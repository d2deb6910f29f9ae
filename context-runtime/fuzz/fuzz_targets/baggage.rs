//! `baggage`: parsing never panics and stays within the limits, and
//! parse ∘ display ∘ parse = parse, both for text and for raw header bytes;
//! a context read with the default (untrusting) propagator keeps exactly
//! the members of the full parse whose key is not identity-shaped (checked
//! against a second, plain implementation of that rule).
#![no_main]

use context_runtime::w3c::{Baggage, BAGGAGE_MAX_BYTES, BAGGAGE_MAX_MEMBERS};
use context_runtime::Propagator;
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

/// The documented rule, written plainly: the `ctx.` namespace in any case,
/// or a key whose letters and digits, lowercased, end in one of the
/// identity suffixes.
fn identity_shaped(key: &str) -> bool {
    if key.to_ascii_lowercase().starts_with("ctx.") {
        return true;
    }
    let letters: String = key
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    ["tenant", "tenantid", "tenantref", "user", "userid", "userref", "principal"]
        .iter()
        .any(|suffix| letters.ends_with(suffix))
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
    if let [line] = lines[..] {
        let cx = Propagator::new()
            .try_extract_values(None, None, Some(line))
            .expect("an untrusting propagator claims no identity");
        check(cx.baggage());
        let expected: Vec<_> = baggage
            .members()
            .iter()
            .filter(|m| !identity_shaped(m.key()))
            .cloned()
            .collect();
        assert_eq!(cx.baggage().members(), &expected[..], "{line:?}");
    }
    // Bytes and text read the same.
    assert_eq!(from_bytes, baggage);

    if let Ok(strict) = Baggage::parse_strict(text) {
        check(&strict);
        assert_eq!(strict, text.parse::<Baggage>().unwrap_or_default());
    }
});
