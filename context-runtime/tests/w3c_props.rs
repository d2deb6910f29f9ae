//! Property tests of the W3C codecs: what is written parses back to the same
//! value, no input makes a parser panic, and baggage stays within its limits.

use context_runtime::w3c::{Baggage, BaggageMember, BaggageProperty, TraceParent, TraceState};
use context_runtime::{SpanId, TraceFlags, TraceId};
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

/// Level 2 keys, short and long.
fn tracestate_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z][a-z0-9_*/@-]{0,12}",
        1 => "[a-z][a-z0-9_*/@-]{200,255}",
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
