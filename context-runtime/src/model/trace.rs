//! Trace identity: [`TraceId`], [`SpanId`] and [`TraceFlags`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The value of each lowercase hex digit, and `0xff` for every other byte.
static HEX_VALUES: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut i = 0;
    while i < 16 {
        table[HEX[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// The two lowercase hex digits of each byte.
static HEX_PAIRS: [[u8; 2]; 256] = {
    let mut table = [[0; 2]; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = [HEX[i >> 4], HEX[i & 0xf]];
        i += 1;
    }
    table
};

/// Decodes `N` bytes from exactly `2 * N` lowercase hex digits.
///
/// Eight digits at a time in a `u64` (SWAR), the rest by table: every
/// `traceparent` has 50 hex digits to decode.
pub(crate) fn decode_lower_hex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    let mut invalid = 0u64;
    let mut words = s.chunks_exact(8);
    let mut bytes = out.chunks_exact_mut(4);
    for (digits, bytes) in (&mut words).zip(&mut bytes) {
        let digits: [u8; 8] = digits.try_into().unwrap_or_default();
        let (decoded, bad) = decode_eight(u64::from_le_bytes(digits));
        invalid |= bad;
        bytes.copy_from_slice(&decoded.to_le_bytes());
    }
    for (byte, pair) in bytes
        .into_remainder()
        .iter_mut()
        .zip(words.remainder().chunks_exact(2))
    {
        let (high, low) = (HEX_VALUES[pair[0] as usize], HEX_VALUES[pair[1] as usize]);
        invalid |= u64::from((high | low) & 0xf0);
        *byte = (high << 4) | (low & 0xf);
    }
    (invalid == 0).then_some(out)
}

/// Decodes eight lowercase hex digits (the bytes of `x`, first digit lowest)
/// into four bytes, and a mask that is non-zero when one is not a digit.
///
/// Each byte's nibble is computed as if it were a digit, written back as the
/// digit it would be, and compared with the byte: only `0-9` and `a-f`
/// survive the round trip.
#[inline]
fn decode_eight(x: u64) -> (u32, u64) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    // `0`-`9` are 0x30-0x39 and `a`-`f` 0x61-0x66: the low four bits, plus
    // 9 when bit 6 (set for letters) is set. At most 15 + 9: no carry.
    let letter = (x >> 6) & ONES;
    let nibbles = (x & (ONES * 0x0f)) + letter * 9;
    // Written back: `0` + n below 10, `a` + n - 10 from 10.
    let ten_or_more = ((nibbles + ONES * 0x76) >> 7) & ONES;
    let written = nibbles + ONES * u64::from(b'0') + ten_or_more * u64::from(b'a' - b'0' - 10);
    let invalid = (written ^ x) | (nibbles & (ONES * 0xf0));
    // Pairs of nibbles into bytes, then the bytes together.
    let pairs = ((nibbles << 4) | (nibbles >> 8)) & 0x00ff_00ff_00ff_00ff;
    let pairs = (pairs | (pairs >> 8)) & 0x0000_ffff_0000_ffff;
    let pairs = (pairs | (pairs >> 16)) & 0x0000_0000_ffff_ffff;
    (pairs as u32, invalid)
}

/// Writes `bytes` as lowercase hex into `out` (which must be twice as long).
///
/// Four bytes at a time in a `u64` (SWAR), the rest by table.
pub(crate) fn encode_lower_hex(bytes: &[u8], out: &mut [u8]) {
    let mut words = bytes.chunks_exact(4);
    let mut digits = out.chunks_exact_mut(8);
    for (word, digits) in (&mut words).zip(&mut digits) {
        let word: [u8; 4] = word.try_into().unwrap_or_default();
        digits.copy_from_slice(&encode_four(word).to_le_bytes());
    }
    for (pair, &byte) in digits
        .into_remainder()
        .chunks_exact_mut(2)
        .zip(words.remainder())
    {
        pair.copy_from_slice(&HEX_PAIRS[byte as usize]);
    }
}

/// Four bytes as eight lowercase hex digits (the first digit lowest).
#[inline]
fn encode_four(bytes: [u8; 4]) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const NIBBLE_LANES: u64 = 0x000f_000f_000f_000f;
    // Each byte into its own 16-bit lane, then its high nibble into the
    // lane's low byte (the first digit) and its low nibble into the high one.
    let x = u64::from(u32::from_le_bytes(bytes));
    let x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    let x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    let nibbles = ((x >> 4) & NIBBLE_LANES) | ((x & NIBBLE_LANES) << 8);
    // `0` + n below 10, `a` + n - 10 from 10.
    let ten_or_more = ((nibbles + ONES * 0x76) >> 7) & ONES;
    nibbles + ONES * u64::from(b'0') + ten_or_more * u64::from(b'a' - b'0' - 10)
}

fn random_nonzero<const N: usize>() -> [u8; N] {
    loop {
        let mut out = [0u8; N];
        fastrand::fill(&mut out);
        if out != [0u8; N] {
            return out;
        }
    }
}

/// Why a [`TraceId`] or [`SpanId`] string was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidId {
    /// The string does not have the expected number of characters.
    Length {
        /// The number of characters expected (32 for a trace id, 16 for a span id).
        expected: usize,
        /// The number of characters found.
        found: usize,
    },
    /// A character is not a lowercase hex digit (`0-9`, `a-f`).
    NotLowercaseHex,
    /// All digits are zero, which W3C Trace Context forbids.
    AllZero,
}

impl fmt::Display for InvalidId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidId::Length { expected, found } => write!(
                f,
                "expected {expected} lowercase hex characters, found {found}"
            ),
            InvalidId::NotLowercaseHex => {
                f.write_str("only lowercase hex digits `0-9` and `a-f` are allowed")
            }
            InvalidId::AllZero => f.write_str("an all-zero id is invalid"),
        }
    }
}

impl std::error::Error for InvalidId {}

macro_rules! hex_id {
    ($(#[$meta:meta])* $name:ident, $len:literal, $what:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; $len]);

        impl $name {
            #[doc = concat!("A new random, non-zero ", $what, ".")]
            pub fn random() -> Self {
                Self(random_nonzero())
            }

            #[doc = concat!("The ", $what, " from its bytes, or `None` when all of them are zero.")]
            pub const fn from_bytes(bytes: [u8; $len]) -> Option<Self> {
                let mut i = 0;
                while i < $len {
                    if bytes[i] != 0 {
                        return Some(Self(bytes));
                    }
                    i += 1;
                }
                None
            }

            #[doc = concat!("The ", $len, " bytes of this ", $what, ".")]
            pub const fn to_bytes(self) -> [u8; $len] {
                self.0
            }

            /// Parses exactly the lowercase hex form, from bytes (no allocation).
            pub fn from_hex(hex: &[u8]) -> Result<Self, InvalidId> {
                if hex.len() != 2 * $len {
                    return Err(InvalidId::Length { expected: 2 * $len, found: hex.len() });
                }
                let bytes = decode_lower_hex::<$len>(hex).ok_or(InvalidId::NotLowercaseHex)?;
                Self::from_bytes(bytes).ok_or(InvalidId::AllZero)
            }

            /// Writes the lowercase hex form into a stack buffer (no allocation).
            pub fn to_hex(self) -> [u8; 2 * $len] {
                let mut out = [0u8; 2 * $len];
                encode_lower_hex(&self.0, &mut out);
                out
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let hex = self.to_hex();
                // Lowercase hex digits are always ASCII.
                f.write_str(std::str::from_utf8(&hex).map_err(|_| fmt::Error)?)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::from_hex(s.as_bytes())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                s.parse().map_err(|e| {
                    serde::de::Error::custom(format_args!(concat!("invalid ", $what, " {:?}: {}"), s, e))
                })
            }
        }
    };
}

hex_id!(
    /// A W3C trace id: 16 bytes, never all zero, written as 32 lowercase hex digits.
    ///
    /// ```
    /// use context_runtime::TraceId;
    ///
    /// let id: TraceId = "4bf92f3577b34da6a3ce929d0e0e4736".parse()?;
    /// assert_eq!(id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    /// assert!("00000000000000000000000000000000".parse::<TraceId>().is_err());
    /// # Ok::<(), context_runtime::InvalidId>(())
    /// ```
    TraceId,
    16,
    "trace id"
);

impl TraceId {
    /// The trace id of these bits (`u128::from_ne_bytes` of its bytes), `None` for 0.
    #[inline]
    pub(crate) fn from_ne_bits(bits: u128) -> Option<TraceId> {
        (bits != 0).then(|| TraceId(bits.to_ne_bytes()))
    }

    /// This trace id's bytes as a `u128` (`u128::from_ne_bytes`), never 0.
    #[inline]
    pub(crate) fn to_ne_bits(self) -> u128 {
        u128::from_ne_bytes(self.0)
    }
}

hex_id!(
    /// A W3C span (parent) id: 8 bytes, never all zero, written as 16 lowercase hex digits.
    ///
    /// ```
    /// use context_runtime::SpanId;
    ///
    /// let id: SpanId = "00f067aa0ba902b7".parse()?;
    /// assert_eq!(id.to_string(), "00f067aa0ba902b7");
    /// # Ok::<(), context_runtime::InvalidId>(())
    /// ```
    SpanId,
    8,
    "span id"
);

/// The W3C `trace-flags` byte. Only the `sampled` (0x01) and `random` (0x02)
/// bits have a meaning; the others are kept as received but never emitted by
/// the W3C codecs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TraceFlags(u8);

impl TraceFlags {
    /// The `sampled` bit: the caller may have recorded its part of the trace.
    pub const SAMPLED: TraceFlags = TraceFlags(0x01);
    /// The Level 2 `random` bit: the trace id's rightmost 7 bytes are random.
    pub const RANDOM: TraceFlags = TraceFlags(0x02);

    /// Flags from their byte.
    pub const fn new(bits: u8) -> Self {
        TraceFlags(bits)
    }

    /// The flags byte.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether the sampled bit is set.
    pub const fn is_sampled(self) -> bool {
        self.0 & 0x01 != 0
    }

    /// Whether the Level 2 random-trace-id bit is set.
    pub const fn is_random(self) -> bool {
        self.0 & 0x02 != 0
    }

    /// These flags with the sampled bit set or cleared.
    pub const fn with_sampled(self, sampled: bool) -> Self {
        if sampled {
            TraceFlags(self.0 | 0x01)
        } else {
            TraceFlags(self.0 & !0x01)
        }
    }
}

impl fmt::Debug for TraceFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceFlags({:02x})", self.0)
    }
}

impl fmt::Display for TraceFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_non_zero_and_distinct() {
        let a = TraceId::random();
        let b = TraceId::random();
        assert_ne!(a, b);
        assert_ne!(a.to_bytes(), [0; 16]);
        assert_ne!(SpanId::random().to_bytes(), [0; 8]);
    }

    #[test]
    fn parse_rejects_bad_input() {
        assert_eq!(
            "abc".parse::<TraceId>(),
            Err(InvalidId::Length {
                expected: 32,
                found: 3
            })
        );
        assert_eq!(
            "4BF92F3577B34DA6A3CE929D0E0E4736".parse::<TraceId>(),
            Err(InvalidId::NotLowercaseHex)
        );
        assert_eq!(
            "0000000000000000".parse::<SpanId>(),
            Err(InvalidId::AllZero)
        );
        // Multi-byte UTF-8 never panics.
        assert!("éééééééééééééééé".parse::<TraceId>().is_err());
    }

    #[test]
    fn hex_decoding_accepts_exactly_lowercase_hex() {
        // Every byte value, in every position of a SWAR word and of the rest.
        let valid = b"0123456789abcdef";
        for position in 0..10 {
            for byte in 0..=255u8 {
                let mut digits = *b"0123456789";
                digits[position] = byte;
                let decoded = decode_lower_hex::<5>(&digits);
                assert_eq!(
                    decoded.is_some(),
                    valid.contains(&byte),
                    "{byte:#x} at {position}"
                );
                if let Some(decoded) = decoded {
                    let mut hex = [0u8; 10];
                    encode_lower_hex(&decoded, &mut hex);
                    assert_eq!(hex, digits);
                }
            }
        }
        let bytes: Vec<u8> = (0..=255).collect();
        let mut hex = vec![0u8; 512];
        encode_lower_hex(&bytes, &mut hex);
        for chunk in 0..32 {
            let digits = &hex[chunk * 16..chunk * 16 + 16];
            assert_eq!(
                decode_lower_hex::<8>(digits).map(Vec::from),
                Some(bytes[chunk * 8..chunk * 8 + 8].to_vec())
            );
        }
        assert_eq!(decode_lower_hex::<2>(b"abc"), None);
        assert_eq!(decode_lower_hex::<1>(b"fF"), None);
    }

    #[test]
    fn display_round_trips() {
        let id = TraceId::random();
        assert_eq!(id.to_string().parse::<TraceId>(), Ok(id));
        let json = serde_json::to_string(&id).expect("serialize");
        assert_eq!(serde_json::from_str::<TraceId>(&json).expect("parse"), id);
        assert!(serde_json::from_str::<TraceId>("\"nope\"").is_err());
    }
}
