//! Property tests of the W3C codecs: what is written parses back to the same
//! value, no input makes a parser panic, and baggage stays within its limits.

use context_runtime::w3c::{
    Baggage, BaggageMember, BaggageProperty, InvalidBaggage, TraceParent, TraceState,
    BAGGAGE_MAX_BYTES, BAGGAGE_MAX_MEMBERS, TRACESTATE_MAX_MEMBERS,
};
use context_runtime::{Carrier, Context, SpanId, TraceFlags, TraceId};
use proptest::collection::vec;
use proptest::prelude::*;

fn trace_parent() -> impl Strategy<Value = TraceParent> {
    (
        any::<[u8; 16]>().prop_filter_map("all-zero trace id", TraceId::from_bytes),
        any::<[u8; 8]>().prop_filter_map("all-zero span id", SpanId::from_bytes),
        any::<u8>(),
    )
        .prop_map(|(trace_id, parent_id, flags)| {
            TraceParent::new(trace_id, parent_id, TraceFlags::new(flags))
        })
}

/// Level 2 keys, short and long, starting with a letter or a digit.
fn tracestate_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z][a-z0-9_*/@-]{0,12}",
        2 => "[0-9][a-z0-9_*/@-]{0,12}",
        1 => "[a-z0-9][a-z0-9_*/@-]{200,255}",
        1 => "[0-9][a-z0-9_*/-]{0,20}@[a-z][a-z0-9_*/-]{0,13}",
    ]
}

/// Printable ASCII without `,` and `=`, not ending in a space.
fn tracestate_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[\\x20-\\x2b\\x2d-\\x3c\\x3e-\\x7e]{0,20}[\\x21-\\x2b\\x2d-\\x3c\\x3e-\\x7e]",
        1 => "[\\x20-\\x2b\\x2d-\\x3c\\x3e-\\x7e]{200,255}[\\x21-\\x2b\\x2d-\\x3c\\x3e-\\x7e]",
    ]
}

fn trace_state() -> impl Strategy<Value = TraceState> {
    vec((tracestate_key(), tracestate_value()), 0..40).prop_map(|members| {
        let mut state = TraceState::new();
        for (key, value) in members {
            state.insert(key, value).expect("valid member");
        }
        state
    })
}

/// RFC 9110 tokens.
fn baggage_key() -> impl Strategy<Value = String> {
    "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,12}"
}

/// Any text, or mostly short ASCII when `large` (so that both limits are
/// reached: the member count and the length).
fn baggage_value(large: bool) -> BoxedStrategy<String> {
    if large {
        prop_oneof![
            4 => "[a-z]{0,3}",
            1 => "(?s).{0,60}",
            1 => (any::<char>(), 500..1500usize).prop_map(|(c, n)| c.to_string().repeat(n)),
        ]
        .boxed()
    } else {
        "(?s).{0,16}".boxed()
    }
}

fn baggage_member(large: bool) -> impl Strategy<Value = BaggageMember> {
    (
        baggage_key(),
        baggage_value(large),
        vec((baggage_key(), proptest::option::of("(?s).{0,8}")), 0..3),
    )
        .prop_map(|(key, value, properties)| {
            properties
                .into_iter()
                .fold(BaggageMember::new(key, value), |member, (k, v)| {
                    member.with_property(BaggageProperty::new(k, v))
                })
        })
}

fn baggage(members: std::ops::Range<usize>, large: bool) -> impl Strategy<Value = Baggage> {
    vec(baggage_member(large), members).prop_map(|members| {
        let mut baggage = Baggage::new();
        for member in members {
            baggage.insert_member(member);
        }
        baggage
    })
}

/// Optional whitespace, as a sender may put it around separators.
fn ows() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(""), Just(" "), Just("\t"), Just(" \t ")]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn traceparent_display_then_parse_is_identity(tp in trace_parent()) {
        let header = tp.to_string();
        prop_assert_eq!(header.len(), TraceParent::LEN);
        prop_assert!(header.starts_with("00-"));
        prop_assert_eq!(header.parse::<TraceParent>(), Ok(tp));
        prop_assert_eq!(TraceParent::parse_bytes(header.as_bytes()), Ok(tp));
    }

    #[test]
    fn traceparent_higher_versions_are_read_as_00(
        tp in trace_parent(),
        version in 1u8..0xff,
        tail in proptest::option::of("-[ -~]{0,30}"),
    ) {
        let header = format!("{version:02x}{}{}", &tp.to_string()[2..], tail.unwrap_or_default());
        prop_assert_eq!(header.parse::<TraceParent>(), Ok(tp));
    }

    #[test]
    fn traceparent_never_panics_on_strings(s in "(?s).{0,80}") {
        if let Ok(tp) = s.parse::<TraceParent>() {
            prop_assert_eq!(tp.to_string().parse::<TraceParent>(), Ok(tp));
        }
    }

    #[test]
    fn traceparent_never_panics_on_near_misses(s in "[ \t]?[0-9a-fA-F]{1,3}(-[0-9a-fA-Z.]{0,34}){0,5}[ \t]?") {
        if let Ok(tp) = s.parse::<TraceParent>() {
            prop_assert_eq!(tp.to_string().parse::<TraceParent>(), Ok(tp));
        }
    }

    #[test]
    fn traceparent_never_panics_on_bytes(bytes in vec(any::<u8>(), 0..80)) {
        let _ = TraceParent::parse_bytes(&bytes);
    }

    #[test]
    fn tracestate_display_then_parse_is_identity(state in trace_state()) {
        prop_assert!(state.len() <= TraceState::MAX_MEMBERS);
        let header = state.to_string();
        prop_assert_eq!(header.parse::<TraceState>(), Ok(state.clone()));
        prop_assert_eq!(header.len(), state.header_len());
    }

    #[test]
    fn tracestate_tolerates_whitespace_empty_members_and_split_lines(
        state in trace_state(),
        seps in vec((ows(), any::<bool>(), ows(), 0u8..4), 40),
    ) {
        // Rewrite the header with random OWS, empty members and line breaks.
        let mut lines = vec![String::new()];
        for ((key, value), (before, empty, after, split)) in state.iter().zip(&seps) {
            let line = lines.last_mut().expect("one line");
            line.push_str(&format!("{before}{key}={value}{after},"));
            if *empty {
                line.push_str(" ,");
            }
            if *split == 0 {
                lines.push(String::new());
            }
        }
        let parsed = TraceState::from_headers(lines.iter().map(String::as_str));
        prop_assert_eq!(parsed, Ok(state));
    }

    #[test]
    fn tracestate_repeated_keys_keep_the_first_member(
        state in trace_state(),
        repeats in vec((any::<proptest::sample::Index>(), tracestate_value(), any::<bool>()), 0..8),
    ) {
        prop_assume!(!state.is_empty());
        // Repeat some keys (with any value) later in the header, some on a
        // line of their own, within the 32 members a header may have.
        let room = TraceState::MAX_MEMBERS - state.len();
        let members: Vec<(&str, &str)> = state.iter().collect();
        let mut lines = vec![state.to_string()];
        for (index, value, new_line) in repeats.iter().take(room) {
            let (key, _) = index.get(&members);
            let member = format!("{key}={value}");
            match lines.last_mut() {
                Some(line) if !new_line => {
                    line.push(',');
                    line.push_str(&member);
                }
                _ => lines.push(member),
            }
        }
        let parsed = TraceState::from_headers(lines.iter().map(String::as_str));
        prop_assert_eq!(parsed, Ok(state));
    }

    #[test]
    fn tracestate_never_panics(s in "(?s).{0,200}", t in "[a-z0-9=, \t@*/_-]{0,200}") {
        for input in [&s, &t] {
            if let Ok(state) = input.parse::<TraceState>() {
                prop_assert_eq!(state.to_string().parse::<TraceState>(), Ok(state));
            }
        }
    }

    #[test]
    fn tracestate_truncation_keeps_whole_members_within_the_limit(
        state in trace_state(),
        max_len in 0usize..2048,
    ) {
        let truncated = state.clone().truncated(max_len);
        prop_assert!(truncated.to_string().len() <= max_len);
        for (key, value) in truncated.iter() {
            prop_assert_eq!(state.get(key), Some(value));
        }
        // Nothing is removed from a list that fits.
        if state.header_len() <= max_len {
            prop_assert_eq!(truncated, state);
        }
    }

    #[test]
    fn baggage_display_then_parse_is_identity(baggage in baggage(0..8, false)) {
        let header = baggage.to_string();
        let parsed: Baggage = header.parse().unwrap_or_default();
        prop_assert_eq!(&parsed, &baggage);
        prop_assert_eq!(Baggage::parse_strict(&header), Ok(baggage));
    }

    #[test]
    fn baggage_output_stays_within_the_limits(baggage in baggage(0..100, true)) {
        let header = baggage.to_string();
        prop_assert!(header.len() <= Baggage::MAX_LEN, "{} bytes", header.len());
        let parsed: Baggage = header.parse().unwrap_or_default();
        prop_assert!(parsed.len() <= Baggage::MAX_MEMBERS);
        // What was written is whole members of the original, in order.
        let written: Vec<BaggageMember> = baggage
            .members()
            .iter()
            .filter(|m| parsed.member(m.key()).is_some())
            .cloned()
            .collect();
        prop_assert_eq!(parsed.members(), &written[..]);
        prop_assert_eq!(&parsed.to_string(), &header);
        // A member is left out only when it does not fit after those before it.
        let (mut count, mut len) = (0, 0);
        for member in baggage.members() {
            let mut alone = Baggage::new();
            alone.insert_member(member.clone());
            // Zero when the member alone is too long to be written.
            let member_len = alone.to_string().len();
            let sep = usize::from(count > 0);
            if parsed.member(member.key()).is_some() {
                count += 1;
                len += sep + member_len;
            } else {
                prop_assert!(
                    count == Baggage::MAX_MEMBERS
                        || member_len == 0
                        || len + sep + member_len > Baggage::MAX_LEN
                );
            }
        }
        prop_assert_eq!(len, header.len());
    }

    #[test]
    fn baggage_parse_stays_within_the_limits(
        members in vec(("[a-z]{1,8}", prop_oneof![
            4 => "[a-z%0-9]{0,4}",
            1 => ("[a-z%0-9]{1,3}", 200..400usize).prop_map(|(s, n)| s.repeat(n)),
        ]), 0..100),
        sep in "[ \t]{0,2},[ \t]{0,2}",
    ) {
        let header = members
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(&sep);
        let parsed: Baggage = header.parse().unwrap_or_default();
        prop_assert!(parsed.len() <= Baggage::MAX_MEMBERS);
        let again = parsed.to_string();
        prop_assert!(again.len() <= Baggage::MAX_LEN);
        prop_assert_eq!(again.parse::<Baggage>().unwrap_or_default(), parsed);
    }

    #[test]
    fn baggage_raw_non_ascii_drops_only_its_member(
        baggage in baggage(1..8, false),
        bad in vec(("[a-z]{1,4}", "[a-z]{0,3}", "[\u{80}-\u{10ffff}]{1,3}", any::<proptest::sample::Index>()), 1..4),
        junk in vec(128u8.., 1..4),
    ) {
        // The header as written, with members holding raw UTF-8 or bytes
        // that are not UTF-8 inserted between its members.
        let mut members: Vec<Vec<u8>> = baggage.to_string().split(',').map(|m| m.as_bytes().to_vec()).collect();
        for (key, prefix, text, at) in &bad {
            let at = at.index(members.len() + 1);
            members.insert(at, format!("{key}x{prefix}={prefix}{text}").into_bytes());
        }
        let mut raw = b"zz=".to_vec();
        raw.extend_from_slice(&junk);
        members.push(raw);
        let header = members.join(&b","[..]);
        prop_assert_eq!(&Baggage::from_header_bytes([header.as_slice()]), &baggage);
        if let Ok(text) = std::str::from_utf8(&header) {
            prop_assert_eq!(&text.parse::<Baggage>().unwrap_or_default(), &baggage);
        }
    }

    #[test]
    fn baggage_never_panics(s in "(?s).{0,300}", t in "[a-zA-Z0-9=;,% \t\"\\\\]{0,300}") {
        for input in [&s, &t] {
            let parsed: Baggage = input.parse().unwrap_or_default();
            // A parsed baggage is written whole and reads back the same.
            prop_assert_eq!(parsed.to_string().parse::<Baggage>().unwrap_or_default(), parsed.clone());
            if let Ok(strict) = Baggage::parse_strict(input) {
                prop_assert_eq!(strict, parsed);
            }
        }
    }
}

/// Parsing a header of 4,000 or 40,000 members keeps the first 64 (and
/// finishes: a quadratic parse of 40,000 members would take minutes in a
/// debug build); a carrier with that many baggage members is refused.
#[test]
fn huge_baggage_is_bounded_on_every_path() {
    for n in [4_000, 40_000] {
        let members: Vec<String> = (0..n).map(|i| format!("k{i}=v{i}")).collect();
        let header = members.join(",");
        let baggage: Baggage = header.parse().unwrap_or_default();
        assert_eq!(baggage.len(), BAGGAGE_MAX_MEMBERS, "{n}");
        assert_eq!(baggage.get("k63"), Some("v63"));
        assert_eq!(baggage.get("k64"), None);
        assert!(baggage.to_string().len() <= BAGGAGE_MAX_BYTES);
        assert_eq!(
            Baggage::from_headers(members.iter().map(String::as_str)),
            baggage
        );
        assert_eq!(
            Baggage::parse_strict(&header),
            Err(InvalidBaggage::TooManyMembers)
        );

        let object: serde_json::Map<String, serde_json::Value> = (0..n)
            .map(|i| (format!("k{i}"), serde_json::Value::from(format!("v{i}"))))
            .collect();
        let json = serde_json::json!({
            "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
            "baggage": object,
        })
        .to_string();
        // A carrier is strict: over the limits it is a typed error, at once.
        let refused = Carrier::from_json(&json)
            .map_err(|e| e.to_string())
            .and_then(|carrier| Context::from_carrier(&carrier).map_err(|e| e.to_string()));
        let error = refused.expect_err("a carrier over the limits is refused");
        assert!(
            error.contains("limit") || error.contains("large"),
            "{n}: {error}"
        );
    }
    // Within the byte limit too: 8 members of 2,000 bytes keep 4.
    let big: Vec<String> = (0..8)
        .map(|i| format!("k{i}={}", "v".repeat(2000)))
        .collect();
    let baggage: Baggage = big.join(",").parse().unwrap_or_default();
    assert_eq!(baggage.len(), 4);
    assert_eq!(TRACESTATE_MAX_MEMBERS, TraceState::MAX_MEMBERS);
}

/// The W3C Trace Context Level 2 harness cases this crate once failed, over
/// HTTP headers: repeated `tracestate` keys and keys that start with a digit.
#[cfg(feature = "http")]
#[test]
fn trace_context_level_2_cases_over_http() {
    use ::http::{HeaderMap, HeaderValue};
    const PARENT: &str = "00-12345678901234567890123456789012-1234567890123456-00";

    let forward = |states: &[&str]| -> Option<String> {
        let mut incoming = HeaderMap::new();
        incoming.insert("traceparent", HeaderValue::from_static(PARENT));
        for state in states {
            incoming.append(
                "tracestate",
                HeaderValue::from_str(state).expect("a header"),
            );
        }
        let cx = context_runtime::http::extract(&incoming);
        assert_eq!(
            cx.trace_id().to_string(),
            "12345678901234567890123456789012"
        );
        let mut outgoing = HeaderMap::new();
        context_runtime::http::inject(&cx, &mut outgoing);
        let state = outgoing.get("tracestate")?;
        Some(state.to_str().expect("ASCII").to_owned())
    };
    // Duplicated keys: inherited, the later duplicate dropped.
    assert_eq!(forward(&["foo=1,foo=1"]).as_deref(), Some("foo=1"));
    assert_eq!(forward(&["foo=1,foo=2"]).as_deref(), Some("foo=1"));
    assert_eq!(forward(&["foo=1", "foo=1"]).as_deref(), Some("foo=1"));
    assert_eq!(forward(&["foo=1", "foo=2"]).as_deref(), Some("foo=1"));
    // Level 2 keys.
    assert_eq!(
        forward(&["1vendor=x,rojo=1"]).as_deref(),
        Some("1vendor=x,rojo=1")
    );
    assert_eq!(
        forward(&["fw529a3039@dt=1", "14a8fe8b-9bb7b2b1@dt=fw4"]).as_deref(),
        Some("fw529a3039@dt=1,14a8fe8b-9bb7b2b1@dt=fw4")
    );
    // Still discarded whole: an invalid key, 33 members.
    assert_eq!(forward(&["foo=1,Bar=2"]), None);
    assert_eq!(forward(&["_vendor=1,rojo=1"]), None);
    let many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
    assert_eq!(forward(&[many.join(",").as_str()]), None);
}

/// Raw UTF-8 (or any byte that is not ASCII) in one baggage member drops
/// that member only, also through `http::extract`.
#[cfg(feature = "http")]
#[test]
fn raw_non_ascii_in_http_baggage_drops_one_member() {
    use ::http::{HeaderMap, HeaderValue};
    let mut headers = HeaderMap::new();
    headers.append(
        "baggage",
        HeaderValue::from_bytes("a=1,e=é,b=2".as_bytes()).expect("obs-text is allowed"),
    );
    headers.append(
        "baggage",
        HeaderValue::from_bytes(b"c=3,f=\xff\xfe,d=4").expect("obs-text is allowed"),
    );
    let cx = context_runtime::http::extract(&headers);
    let members: Vec<(&str, &str)> = cx.baggage().iter().collect();
    assert_eq!(members, [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]);
}
