//! W3C Trace Context `traceparent`: version, trace id, parent id and flags.

use std::fmt;
use std::str::FromStr;

use super::trim_ows;
use crate::model::trace::decode_lower_hex;
use crate::model::trace::{InvalidId, SpanId, TraceFlags, TraceId};

/// The flag bits this codec keeps and emits: `sampled` (0x01) and the Level 2
/// `random` bit (0x02).
const KNOWN_FLAGS: u8 = 0x03;

/// A `traceparent` header value: the trace id, the caller's span id (the
/// *parent id*) and the trace flags.
///
/// ```
/// use context_runtime::w3c::TraceParent;
///
/// let tp: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse()?;
/// assert_eq!(tp.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_eq!(tp.parent_id().to_string(), "00f067aa0ba902b7");
/// assert!(tp.flags().is_sampled());
///
/// // The next hop keeps the trace id and the flags, with a new parent id.
/// let next = tp.child();
/// assert_eq!(next.trace_id(), tp.trace_id());
/// assert_ne!(next.parent_id(), tp.parent_id());
/// assert_eq!(next.to_string().len(), 55);
/// # Ok::<(), context_runtime::w3c::InvalidTraceParent>(())
/// ```
///
/// # Parsing
///
/// Parsing follows W3C Trace Context Level 2 and allocates nothing:
///
/// - version `00` is exactly 55 characters:
///   `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, all hex digits
///   lowercase; anything after them makes the value invalid;
/// - version `ff` is invalid, and so are an all-zero trace id or parent id;
/// - a higher version (`01` to `fe`) is read by its first 55 characters, as the
///   spec asks: the 56th character, if there is one, must be `-`, and whatever
///   follows it is not looked at. Such a value is re-emitted as version `00`;
/// - optional whitespace (spaces and tabs) before and after the value is not
///   part of an HTTP field value (RFC 9110, section 5.5), so it is ignored.
///   Whitespace anywhere else makes the value invalid.
///
/// # Flags
///
/// Only the `sampled` (0x01) and Level 2 `random` (0x02) bits have a meaning.
/// The other bits are cleared when a `TraceParent` is made or parsed, so they
/// are never forwarded (the spec asks for them to be zero).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: TraceId,
    parent_id: SpanId,
    flags: TraceFlags,
}

impl TraceParent {
    /// The length of a version `00` value, and of the part of a higher version
    /// that is read.
    pub const LEN: usize = 55;

    /// A `traceparent` from its parts. Flag bits other than `sampled` and
    /// `random` are cleared.
    pub const fn new(trace_id: TraceId, parent_id: SpanId, flags: TraceFlags) -> Self {
        TraceParent {
            trace_id,
            parent_id,
            flags: TraceFlags::new(flags.bits() & KNOWN_FLAGS),
        }
    }

    /// The trace id, shared by every hop of the trace.
    pub const fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// The parent id: the span id of the caller that sent this value.
    pub const fn parent_id(&self) -> SpanId {
        self.parent_id
    }

    /// The trace flags (only the `sampled` and `random` bits can be set).
    pub const fn flags(&self) -> TraceFlags {
        self.flags
    }

    /// Whether the caller may have recorded its part of the trace.
    pub const fn is_sampled(&self) -> bool {
        self.flags.is_sampled()
    }

    /// The value to send to the next hop: the same trace id and flags, with a
    /// new random parent id.
    pub fn child(&self) -> TraceParent {
        self.with_parent_id(SpanId::random())
    }

    /// This value with another parent id.
    pub const fn with_parent_id(&self, parent_id: SpanId) -> TraceParent {
        TraceParent { parent_id, ..*self }
    }

    /// This value with other flags (bits other than `sampled` and `random`
    /// are cleared).
    pub const fn with_flags(&self, flags: TraceFlags) -> TraceParent {
        TraceParent::new(self.trace_id, self.parent_id, flags)
    }

    /// Parses a header value from its bytes, as an HTTP library hands them
    /// over. Allocates nothing. See [the type's docs](TraceParent#parsing)
    /// for the rules.
    pub fn parse_bytes(value: &[u8]) -> Result<TraceParent, InvalidTraceParent> {
        let value = trim_ows(value);
        match <&[u8; TraceParent::LEN]>::try_from(value) {
            Ok(value) => Self::parse_version_00(value).map_or_else(|| Self::parse_any(value), Ok),
            Err(_) => Self::parse_any(value),
        }
    }

    /// The common case, without a branch per field: a valid version `00`
    /// value. `None` for anything else, which [`TraceParent::parse_any`]
    /// then reads or explains.
    #[inline]
    fn parse_version_00(value: &[u8; TraceParent::LEN]) -> Option<TraceParent> {
        let dashes = [value[2], value[35], value[52]];
        if value[..2] != *b"00" || dashes != [b'-'; 3] {
            return None;
        }
        let trace_id = decode_lower_hex::<16>(&value[3..35]).and_then(TraceId::from_bytes)?;
        let parent_id = decode_lower_hex::<8>(&value[36..52]).and_then(SpanId::from_bytes)?;
        let [flags] = decode_lower_hex::<1>(&value[53..])?;
        Some(TraceParent::new(
            trace_id,
            parent_id,
            TraceFlags::new(flags),
        ))
    }

    /// Any value: other versions, and the precise error of an invalid one.
    fn parse_any(value: &[u8]) -> Result<TraceParent, InvalidTraceParent> {
        let found = value.len();

        let version = value
            .get(..2)
            .ok_or(InvalidTraceParent::TooShort { found })?;
        let [version] = decode_lower_hex::<1>(version).ok_or(InvalidTraceParent::InvalidVersion)?;
        if version == 0xff {
            return Err(InvalidTraceParent::ForbiddenVersion);
        }

        let (fields, rest) = value
            .split_first_chunk::<{ TraceParent::LEN }>()
            .ok_or(InvalidTraceParent::TooShort { found })?;
        let (_, fields) = fields.split_at(2);
        let fields = expect_dash(fields, 2)?;
        let (trace_id, fields) = fields.split_at(32.min(fields.len()));
        let fields = expect_dash(fields, 35)?;
        let (parent_id, fields) = fields.split_at(16.min(fields.len()));
        let flags = expect_dash(fields, 52)?;

        let trace_id = TraceId::from_hex(trace_id).map_err(InvalidTraceParent::InvalidTraceId)?;
        let parent_id = SpanId::from_hex(parent_id).map_err(InvalidTraceParent::InvalidParentId)?;
        let [flags] = decode_lower_hex::<1>(flags).ok_or(InvalidTraceParent::InvalidFlags)?;

        match rest.first() {
            None => {}
            Some(_) if version == 0 => return Err(InvalidTraceParent::TrailingData { found }),
            Some(b'-') => {}
            Some(_) => return Err(InvalidTraceParent::MissingDash { offset: Self::LEN }),
        }
        Ok(TraceParent::new(
            trace_id,
            parent_id,
            TraceFlags::new(flags),
        ))
    }

    /// The version `00` form, as 55 ASCII bytes on the stack.
    fn to_ascii(self) -> Ascii {
        let mut ascii = Ascii([b'-'; TraceParent::LEN]);
        let out = &mut ascii.0;
        let (version, rest) = out.split_at_mut(2);
        version.copy_from_slice(b"00");
        let (trace_id, rest) = rest.split_at_mut(1).1.split_at_mut(32);
        trace_id.copy_from_slice(&self.trace_id.to_hex());
        let (parent_id, rest) = rest.split_at_mut(1).1.split_at_mut(16);
        parent_id.copy_from_slice(&self.parent_id.to_hex());
        crate::model::trace::encode_lower_hex(
            &[self.flags.bits() & KNOWN_FLAGS],
            rest.split_at_mut(1).1,
        );
        ascii
    }
}

/// The text of a `traceparent`, aligned so that checking it is UTF-8 runs
/// a word at a time from its first byte.
#[repr(align(16))]
struct Ascii([u8; TraceParent::LEN]);

/// Checks that `fields` starts with `-` (at `offset` in the header value) and
/// returns what follows it.
fn expect_dash(fields: &[u8], offset: usize) -> Result<&[u8], InvalidTraceParent> {
    match fields.split_first() {
        Some((b'-', rest)) => Ok(rest),
        _ => Err(InvalidTraceParent::MissingDash { offset }),
    }
}

impl FromStr for TraceParent {
    type Err = InvalidTraceParent;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TraceParent::parse_bytes(s.as_bytes())
    }
}

/// Always version `00`, with only the `sampled` and `random` flag bits.
impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ascii = self.to_ascii();
        // Hex digits and dashes are always ASCII.
        f.write_str(std::str::from_utf8(&ascii.0).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({self})")
    }
}

/// Why a `traceparent` value was rejected. A receiver ignores such a value
/// and starts a new trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidTraceParent {
    /// Shorter than the 55 characters of a version `00` value.
    TooShort {
        /// The number of characters found (without surrounding whitespace).
        found: usize,
    },
    /// A version `00` value with more than 55 characters.
    TrailingData {
        /// The number of characters found (without surrounding whitespace).
        found: usize,
    },
    /// The version is not two lowercase hex digits.
    InvalidVersion,
    /// Version `ff`, which the spec forbids.
    ForbiddenVersion,
    /// A `-` is missing where one is required.
    MissingDash {
        /// The 0-based offset in the value where `-` was expected.
        offset: usize,
    },
    /// The trace id is not 32 lowercase hex digits, or is all zero.
    InvalidTraceId(InvalidId),
    /// The parent id is not 16 lowercase hex digits, or is all zero.
    InvalidParentId(InvalidId),
    /// The flags are not two lowercase hex digits.
    InvalidFlags,
}

impl fmt::Display for InvalidTraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidTraceParent::TooShort { found } => write!(
                f,
                "traceparent is too short: expected {} characters, found {found}",
                TraceParent::LEN
            ),
            InvalidTraceParent::TrailingData { found } => write!(
                f,
                "traceparent version `00` must be exactly {} characters, found {found}",
                TraceParent::LEN
            ),
            InvalidTraceParent::InvalidVersion => {
                f.write_str("traceparent version must be two lowercase hex digits")
            }
            InvalidTraceParent::ForbiddenVersion => {
                f.write_str("traceparent version `ff` is forbidden")
            }
            InvalidTraceParent::MissingDash { offset } => {
                write!(f, "traceparent has no `-` at offset {offset}")
            }
            InvalidTraceParent::InvalidTraceId(e) => {
                write!(f, "traceparent has an invalid trace id: {e}")
            }
            InvalidTraceParent::InvalidParentId(e) => {
                write!(f, "traceparent has an invalid parent id: {e}")
            }
            InvalidTraceParent::InvalidFlags => {
                f.write_str("traceparent flags must be two lowercase hex digits")
            }
        }
    }
}

impl std::error::Error for InvalidTraceParent {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InvalidTraceParent::InvalidTraceId(e) | InvalidTraceParent::InvalidParentId(e) => {
                Some(e)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PARENT: &str = "00f067aa0ba902b7";

    fn parse(s: &str) -> Result<TraceParent, InvalidTraceParent> {
        s.parse()
    }

    #[test]
    fn valid_values() {
        let table: &[(&str, &str)] = &[
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            ),
            // The Level 2 random bit is kept.
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
            ),
            // Unknown flag bits are zeroed.
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-08",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            ),
            // Surrounding whitespace is not part of the field value.
            (
                " \t00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\t ",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            // Higher versions: the first 55 characters, re-emitted as `00`.
            (
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            (
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            (
                "fe-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-XYZ not looked at",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            ),
        ];
        for (input, output) in table {
            let tp = parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(tp.to_string(), *output, "{input:?}");
            assert_eq!(tp.trace_id().to_string(), TRACE);
            assert_eq!(tp.parent_id().to_string(), PARENT);
            assert_eq!(TraceParent::parse_bytes(input.as_bytes()), Ok(tp));
        }
    }

    #[test]
    fn invalid_values() {
        use InvalidTraceParent::*;
        let table: &[(&str, InvalidTraceParent)] = &[
            ("", TooShort { found: 0 }),
            ("   ", TooShort { found: 0 }),
            ("0", TooShort { found: 1 }),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
                TooShort { found: 54 },
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
                TooShort { found: 52 },
            ),
            (
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
                TooShort { found: 52 },
            ),
            // Version `00` is exactly 55 characters.
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
                TrailingData { found: 56 },
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.",
                TrailingData { found: 56 },
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like",
                TrailingData { found: 84 },
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-010",
                TrailingData { found: 56 },
            ),
            // A higher version's 56th character must be `-`.
            (
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.what-the-future-will-be-like",
                MissingDash { offset: 55 },
            ),
            (
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-010",
                MissingDash { offset: 55 },
            ),
            // Version.
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ForbiddenVersion,
            ),
            (
                "FF-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                InvalidVersion,
            ),
            (
                "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                InvalidVersion,
            ),
            (
                ".0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                InvalidVersion,
            ),
            (
                "0.-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                InvalidVersion,
            ),
            (
                "000-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                MissingDash { offset: 2 },
            ),
            (
                "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                InvalidVersion,
            ),
            // Separators.
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                MissingDash { offset: 2 },
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
                MissingDash { offset: 35 },
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
                MissingDash { offset: 52 },
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
                MissingDash { offset: 35 },
            ),
            // Trace id.
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                InvalidTraceId(InvalidId::NotLowercaseHex),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473.-00f067aa0ba902b7-01",
                InvalidTraceId(InvalidId::NotLowercaseHex),
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                InvalidTraceId(InvalidId::AllZero),
            ),
            // Parent id.
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
                InvalidParentId(InvalidId::NotLowercaseHex),
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                InvalidParentId(InvalidId::AllZero),
            ),
            // Flags.
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
                InvalidFlags,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-.0",
                InvalidFlags,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0.",
                InvalidFlags,
            ),
            // Whitespace inside the value.
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736- 0f067aa0ba902b7-01",
                InvalidParentId(InvalidId::NotLowercaseHex),
            ),
            (
                "00 4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                MissingDash { offset: 2 },
            ),
            // Multi-byte characters never split a char or panic.
            (
                "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01",
                InvalidTraceId(InvalidId::NotLowercaseHex),
            ),
            ("ééééééééééééééééééééééééééééé", InvalidVersion),
        ];
        for (input, expected) in table {
            assert_eq!(parse(input), Err(*expected), "{input:?}");
            // Every error says it is about a traceparent.
            assert!(expected.to_string().starts_with("traceparent "));
        }
    }

    #[test]
    fn error_messages_say_what_is_wrong() {
        let e = parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01").unwrap_err();
        assert_eq!(
            e.to_string(),
            "traceparent has an invalid trace id: an all-zero id is invalid"
        );
        let e = parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "traceparent version `00` must be exactly 55 characters, found 57"
        );
        assert!(std::error::Error::source(&e).is_none());
    }

    #[test]
    fn new_masks_unknown_flags() {
        let tp = TraceParent::new(TraceId::random(), SpanId::random(), TraceFlags::new(0xff));
        assert_eq!(tp.flags().bits(), 0x03);
        assert!(tp.to_string().ends_with("-03"));
        let tp = tp.with_flags(TraceFlags::new(0x04));
        assert_eq!(tp.flags().bits(), 0);
        assert!(!tp.is_sampled());
    }

    #[test]
    fn child_keeps_trace_and_flags_with_a_new_parent_id() {
        let tp = parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03").unwrap();
        let child = tp.child();
        assert_eq!(child.trace_id(), tp.trace_id());
        assert_eq!(child.flags(), tp.flags());
        assert_ne!(child.parent_id(), tp.parent_id());
        assert_ne!(child.parent_id(), tp.child().parent_id());
        assert_eq!(parse(&child.to_string()), Ok(child));
    }
}
