//! W3C Trace Context `tracestate`: vendor-specific `key=value` members, in order.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::OnceLock;

use super::{trim_ows_str, HeaderText};

/// A `tracestate` header value: an ordered list of up to 32 `key=value`
/// members with unique keys, the most recently changed one first.
///
/// ```
/// use context_runtime::w3c::TraceState;
///
/// // Several header lines are one list, in order.
/// let mut state = TraceState::from_headers(["rojo=00f067aa0ba902b7", "congo=t61rcWkgMzE,,"])?;
/// assert_eq!(state.get("congo"), Some("t61rcWkgMzE"));
///
/// // A changed or new member moves to the front.
/// state.insert("congo", "ucfJifl5GOE")?;
/// assert_eq!(state.to_string(), "congo=ucfJifl5GOE,rojo=00f067aa0ba902b7");
///
/// // Keys may start with a digit (Level 2).
/// assert_eq!("1vendor=x,rojo=1".parse::<TraceState>()?.get("1vendor"), Some("x"));
///
/// // A repeated key: the first member is kept, the later ones dropped.
/// assert_eq!("rojo=1,rojo=2".parse::<TraceState>()?.to_string(), "rojo=1");
///
/// // One invalid member discards the whole header.
/// assert!("rojo=1,Congo=2".parse::<TraceState>().is_err());
/// # Ok::<(), context_runtime::w3c::InvalidTraceState>(())
/// ```
///
/// # Grammar
///
/// Per W3C Trace Context Level 2:
///
/// - a key is `( lcalpha / DIGIT ) 0*255 ( keychar )`: a lowercase letter or
///   a digit, then up to 255 lowercase letters, digits, `_`, `-`, `*`, `/`
///   and `@`. Level 1's multi-tenant keys (`tenant@vendor`, such as
///   `14a8fe8b-9bb7b2b1@dt`) are keys of this grammar;
/// - a value is 1 to 256 printable ASCII characters (`0x20` to `0x7e`) other
///   than `,` and `=`, and does not end with a space;
/// - members are separated by `,` with optional spaces and tabs around it;
///   empty members are allowed and ignored;
/// - at most 32 members ([`TRACESTATE_MAX_MEMBERS`](super::TRACESTATE_MAX_MEMBERS)),
///   counted as received (empty members do not count, repeated ones do).
///
/// A key that comes again (in the same line or a later one) is a sender's
/// mistake the spec lets a receiver pass on as it is or drop: the first
/// member is kept and the later ones with the same key are dropped, so keys
/// stay unique.
///
/// If anything else is wrong, the whole header is invalid: [`FromStr`] and
/// [`TraceState::from_headers`] return an [`InvalidTraceState`], and a
/// receiver then goes on with an empty `tracestate`.
///
/// Parsing is linear in the input: at most 32 members are read, each once.
///
/// A header that is already in the form [`Display`](fmt::Display) writes
/// (one line, no whitespace, no empty or repeated member) is validated and
/// kept as its text: writing it again is a copy, and the member list is
/// built only when something asks for it ([`iter`](TraceState::iter),
/// [`insert`](TraceState::insert)…).
#[derive(Clone, Default)]
pub struct TraceState {
    /// `(key, value)` pairs, leftmost first; keys unique and valid. Empty
    /// while `raw` holds the header.
    members: Vec<(String, String)>,
    /// The header as received, when it is valid and canonical.
    raw: Option<RawState>,
}

/// A valid, canonical `tracestate` header, its members parsed on first use.
#[derive(Clone)]
struct RawState {
    text: Box<str>,
    len: usize,
    parsed: OnceLock<Vec<(String, String)>>,
}

impl PartialEq for TraceState {
    fn eq(&self, other: &Self) -> bool {
        self.list() == other.list()
    }
}

impl Eq for TraceState {}

impl Hash for TraceState {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.list().hash(state);
    }
}

impl TraceState {
    /// The most members a `tracestate` may have
    /// ([`TRACESTATE_MAX_MEMBERS`](super::TRACESTATE_MAX_MEMBERS)).
    pub const MAX_MEMBERS: usize = 32;

    /// The longest key.
    pub const MAX_KEY_LEN: usize = 256;

    /// The longest value.
    pub const MAX_VALUE_LEN: usize = 256;

    /// Members longer than this are the first to go when truncating.
    const LONG_MEMBER: usize = 128;

    /// An empty list.
    pub const fn new() -> Self {
        TraceState {
            members: Vec::new(),
            raw: None,
        }
    }

    /// The members, parsed from the kept header on first use.
    fn list(&self) -> &[(String, String)] {
        match &self.raw {
            Some(raw) => raw.parsed.get_or_init(|| {
                raw.text
                    .split(',')
                    .filter_map(|m| m.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect()
            }),
            None => &self.members,
        }
    }

    /// The members, for a change: the kept header is parsed (once) and
    /// dropped.
    fn list_mut(&mut self) -> &mut Vec<(String, String)> {
        if let Some(raw) = self.raw.take() {
            self.members = match raw.parsed.into_inner() {
                Some(members) => members,
                None => raw
                    .text
                    .split(',')
                    .filter_map(|m| m.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            };
        }
        &mut self.members
    }

    /// Checks one header value without building the member list: its
    /// number of members when it is valid and in the form `Display` writes
    /// (no whitespace around members, no empty or repeated member), `None`
    /// otherwise (the full parse then decides, and reports what is wrong).
    fn scan(text: &str) -> Option<usize> {
        let bytes = text.as_bytes();
        // Where each key starts and ends, at most 32 of them.
        let mut keys = [(0usize, 0usize); TraceState::MAX_MEMBERS];
        let mut count = 0;
        let mut i = 0;
        loop {
            let start = i;
            if !bytes
                .get(i)
                .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            {
                return None;
            }
            i += 1;
            let rest = bytes.get(i..).unwrap_or_default();
            i += rest
                .iter()
                .position(|&c| !is_key_char(c))
                .unwrap_or(rest.len());
            let end = i;
            if end - start > TraceState::MAX_KEY_LEN || bytes.get(i) != Some(&b'=') {
                return None;
            }
            let value = i + 1;
            i = value;
            let rest = bytes.get(i..).unwrap_or_default();
            i += rest
                .iter()
                .position(|&c| !matches!(c, 0x20..=0x2b | 0x2d..=0x3c | 0x3e..=0x7e))
                .unwrap_or(rest.len());
            if i == value
                || i - value > TraceState::MAX_VALUE_LEN
                || bytes.get(i - 1) == Some(&b' ')
            {
                return None;
            }
            let key = bytes.get(start..end)?;
            if keys
                .get(..count)?
                .iter()
                .any(|&(s, e)| e - s == key.len() && bytes.get(s..e) == Some(key))
            {
                return None;
            }
            *keys.get_mut(count)? = (start, end);
            count += 1;
            match bytes.get(i) {
                None => return Some(count),
                Some(b',') => i += 1,
                Some(_) => return None,
            }
        }
    }

    /// Parses several `tracestate` header lines as one list, in order (as an
    /// HTTP recipient combines repeated field lines with `,`).
    pub fn from_headers<'a, I>(values: I) -> Result<TraceState, InvalidTraceState>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut values = values.into_iter();
        let Some(first) = values.next() else {
            return Ok(TraceState::new());
        };
        let second = values.next();
        if second.is_none() && !first.is_empty() {
            if let Some(len) = Self::scan(first) {
                return Ok(TraceState {
                    members: Vec::new(),
                    raw: Some(RawState {
                        text: first.into(),
                        len,
                        parsed: OnceLock::new(),
                    }),
                });
            }
        }
        let mut state = TraceState::new();
        let mut position = 0;
        for value in std::iter::once(first).chain(second).chain(values) {
            for member in value.split(',') {
                let member = trim_ows_str(member);
                if member.is_empty() {
                    continue;
                }
                position += 1;
                if position > Self::MAX_MEMBERS {
                    return Err(InvalidTraceState::TooManyMembers);
                }
                let (key, value) = member
                    .split_once('=')
                    .ok_or(InvalidTraceState::MissingEquals { member: position })?;
                if !is_valid_key(key) {
                    return Err(InvalidTraceState::InvalidKey { member: position });
                }
                if !is_valid_value(value) {
                    return Err(InvalidTraceState::InvalidValue { member: position });
                }
                // A repeated key: the first member stays, this one goes. At
                // most 32 members, so the scan is bounded.
                if state.get(key).is_none() {
                    state.members.push((key.to_owned(), value.to_owned()));
                }
            }
        }
        Ok(state)
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        if let Some(raw) = &self.raw {
            // Canonical: no whitespace, keys unique.
            return raw
                .text
                .split(',')
                .filter_map(|m| m.split_once('='))
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v);
        }
        self.members
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `key` to `value` and moves the member to the front, as the spec
    /// asks for a new or changed member. When a new member makes the list
    /// longer than 32, the rightmost member is removed.
    ///
    /// An invalid key or value is an error (reported as member 1, the place it
    /// would have taken) and leaves the list unchanged.
    pub fn insert(
        &mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<(), InvalidTraceState> {
        let (key, value) = (key.into(), value.into());
        if !is_valid_key(&key) {
            return Err(InvalidTraceState::InvalidKey { member: 1 });
        }
        if !is_valid_value(&value) {
            return Err(InvalidTraceState::InvalidValue { member: 1 });
        }
        self.remove(&key);
        let members = self.list_mut();
        members.insert(0, (key, value));
        members.truncate(Self::MAX_MEMBERS);
        Ok(())
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let members = self.list_mut();
        let index = members.iter().position(|(k, _)| k == key)?;
        Some(members.remove(index).1)
    }

    /// `(key, value)` pairs, leftmost first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.list().iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        match &self.raw {
            Some(raw) => raw.len,
            None => self.members.len(),
        }
    }

    /// Whether there are no members. An empty `tracestate` is better not sent.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The length of the header value [`Display`](fmt::Display) writes.
    pub fn header_len(&self) -> usize {
        if let Some(raw) = &self.raw {
            return raw.text.len();
        }
        let members: usize = self.members.iter().map(|(k, v)| member_len(k, v)).sum();
        members + self.members.len().saturating_sub(1)
    }

    /// Removes whole members until the header value is at most `max_len`
    /// characters, as the spec advises: first members longer than 128
    /// characters, rightmost first, then the rightmost members.
    ///
    /// The spec asks every vendor to propagate at least 512 characters.
    ///
    /// ```
    /// use context_runtime::w3c::TraceState;
    ///
    /// let long = "x".repeat(200);
    /// let mut state: TraceState = format!("a=1,big={long},b=2,c=3").parse()?;
    /// state.truncate(10);
    /// assert_eq!(state.to_string(), "a=1,b=2");
    /// # Ok::<(), context_runtime::w3c::InvalidTraceState>(())
    /// ```
    pub fn truncate(&mut self, max_len: usize) {
        let mut len = self.header_len();
        if len <= max_len {
            return;
        }
        self.list_mut();
        while len > max_len {
            let long = self
                .members
                .iter()
                .rposition(|(k, v)| member_len(k, v) > Self::LONG_MEMBER);
            let index = match long {
                Some(index) => index,
                None => match self.members.len().checked_sub(1) {
                    Some(last) => last,
                    None => return,
                },
            };
            let (k, v) = self.members.remove(index);
            len -= member_len(&k, &v) + usize::from(!self.members.is_empty());
        }
    }

    /// This list [truncated](TraceState::truncate) to `max_len` characters.
    #[must_use]
    pub fn truncated(mut self, max_len: usize) -> TraceState {
        self.truncate(max_len);
        self
    }
}

/// A `tracestate` header line kept as received and checked on first use:
/// what a [`Context`](crate::Context) read from a wire holds, so that a
/// request whose handler never looks at its `tracestate` (or only forwards
/// it) does not pay for its parse. [`get`](LazyTraceState::get) gives the
/// same answer the eager parse would have: the valid, non-empty state, or
/// `None` for an invalid or empty one.
#[derive(Clone)]
pub(crate) enum LazyTraceState {
    /// No state (none came, or it was invalid or empty).
    None,
    /// A valid, non-empty state.
    Checked(TraceState),
    /// The line as received (bytes: whether it is text is checked with the
    /// rest), checked on first use.
    Unchecked {
        text: HeaderText,
        state: OnceLock<Option<TraceState>>,
    },
}

impl LazyTraceState {
    /// The longest valid `tracestate` without whitespace: longer lines are
    /// checked at once, so that a context never holds more than a valid
    /// one would.
    const MAX_LAZY_LEN: usize =
        TraceState::MAX_MEMBERS * (TraceState::MAX_KEY_LEN + 1 + TraceState::MAX_VALUE_LEN + 1);

    /// A state already checked (or none).
    pub(crate) fn checked(state: Option<TraceState>) -> Self {
        match state {
            Some(state) if !state.is_empty() => LazyTraceState::Checked(state),
            _ => LazyTraceState::None,
        }
    }

    /// One header line, checked on first use.
    pub(crate) fn line(text: &str) -> Self {
        Self::line_bytes(text.as_bytes())
    }

    /// One header line as bytes, checked on first use (not text: no
    /// state).
    pub(crate) fn line_bytes(bytes: &[u8]) -> Self {
        if bytes.len() > Self::MAX_LAZY_LEN {
            let state = std::str::from_utf8(bytes)
                .ok()
                .and_then(|text| TraceState::from_headers([text]).ok());
            return Self::checked(state);
        }
        LazyTraceState::Unchecked {
            text: HeaderText::new(bytes),
            state: OnceLock::new(),
        }
    }

    /// The state, checked on first use: `None` when there is none, or the
    /// line is invalid or empty.
    pub(crate) fn get(&self) -> Option<&TraceState> {
        match self {
            LazyTraceState::None => None,
            LazyTraceState::Checked(state) => Some(state),
            LazyTraceState::Unchecked { text, state } => state
                .get_or_init(|| {
                    let text = std::str::from_utf8(text.as_bytes()).ok()?;
                    TraceState::from_headers([text])
                        .ok()
                        .filter(|s| !s.is_empty())
                })
                .as_ref(),
        }
    }
}

/// The length of `key=value`.
fn member_len(key: &str, value: &str) -> usize {
    key.len() + 1 + value.len()
}

/// A Level 2 key: `( lcalpha / DIGIT ) 0*255 ( keychar )`. Level 1's
/// `tenant-id "@" system-id` keys (a tenant of up to 241 characters, a system
/// of up to 14) all match it.
fn is_valid_key(key: &str) -> bool {
    match key.as_bytes().split_first() {
        Some((first, rest)) if first.is_ascii_lowercase() || first.is_ascii_digit() => {
            rest.len() < TraceState::MAX_KEY_LEN && rest.iter().all(|&c| is_key_char(c))
        }
        _ => false,
    }
}

/// `keychar = lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@"`.
fn is_key_char(c: u8) -> bool {
    matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/' | b'@')
}

/// `0*255(chr) nblk-chr`: printable ASCII without `,` and `=`, not ending in
/// a space.
fn is_valid_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.len() <= TraceState::MAX_VALUE_LEN
        && matches!(bytes.last(), Some(&c) if c != b' ')
        && bytes
            .iter()
            .all(|&c| matches!(c, 0x20..=0x7e) && c != b',' && c != b'=')
}

impl FromStr for TraceState {
    type Err = InvalidTraceState;

    /// Parses one header value. See [`TraceState::from_headers`] for several.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TraceState::from_headers([s])
    }
}

/// Members joined by `,`, leftmost first, without whitespace.
impl fmt::Display for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(raw) = &self.raw {
            return f.write_str(&raw.text);
        }
        for (i, (k, v)) in self.members.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Why a `tracestate` header was rejected as a whole.
///
/// `member` is the 1-based position of the offending member among the
/// non-empty members of all the header lines read together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidTraceState {
    /// More than 32 members.
    TooManyMembers,
    /// A member without `=` between key and value.
    MissingEquals {
        /// The member's position.
        member: usize,
    },
    /// A key outside the grammar (lowercase letters, digits, `_ - * / @`,
    /// starting with a letter or digit, at most 256 characters).
    InvalidKey {
        /// The member's position.
        member: usize,
    },
    /// A value outside the grammar (1 to 256 printable ASCII characters
    /// without `,` or `=`, not ending in a space).
    InvalidValue {
        /// The member's position.
        member: usize,
    },
    /// A key that an earlier member already has. Parsing does not return
    /// it (a repeated key's later members are dropped); it is kept for code
    /// that matches on it.
    DuplicateKey {
        /// The member's position.
        member: usize,
    },
}

impl fmt::Display for InvalidTraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidTraceState::TooManyMembers => write!(
                f,
                "tracestate has more than {} members",
                TraceState::MAX_MEMBERS
            ),
            InvalidTraceState::MissingEquals { member } => {
                write!(f, "tracestate member {member} has no `=`")
            }
            InvalidTraceState::InvalidKey { member } => write!(
                f,
                "tracestate member {member} has an invalid key: expected a lowercase letter \
                 or a digit, and up to 255 of `a-z`, `0-9`, `_`, `-`, `*`, `/` and `@`"
            ),
            InvalidTraceState::InvalidValue { member } => write!(
                f,
                "tracestate member {member} has an invalid value: expected 1 to 256 printable \
                 ASCII characters without `,` or `=`, not ending in a space"
            ),
            InvalidTraceState::DuplicateKey { member } => {
                write!(
                    f,
                    "tracestate member {member} repeats the key of an earlier member"
                )
            }
        }
    }
}

impl std::error::Error for InvalidTraceState {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_kept_unchecked_reads_as_the_eager_parse_would() {
        let long = format!("a={},b=2", "x".repeat(200));
        for line in [
            "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
            "rojo=1,rojo=2",
            " a=1 ,, b=2 ",
            "Congo=1",
            "",
            ",",
            long.as_str(),
        ] {
            let lazy = LazyTraceState::line(line);
            let eager = TraceState::from_headers([line])
                .ok()
                .filter(|s| !s.is_empty());
            assert_eq!(lazy.get(), eager.as_ref(), "{line:?}");
            // Read twice: the same answer.
            assert_eq!(lazy.get(), eager.as_ref(), "{line:?}");
        }
        // Bytes that are not text: no state.
        assert_eq!(LazyTraceState::line_bytes(&[b'a', b'=', 0xff]).get(), None);
    }

    #[test]
    fn a_kept_header_reads_as_the_full_parse() {
        for header in [
            "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
            "1vendor=x,a@b=c d",
            "rojo=1,rojo=2",
            "a=1 , b=2",
            "a=1,,b=2",
        ] {
            let kept: TraceState = header.parse().expect("valid");
            let mut full = TraceState::new();
            for (k, v) in kept.iter() {
                full.members.push((k.to_owned(), v.to_owned()));
            }
            assert_eq!(kept.len(), full.len(), "{header}");
            assert_eq!(kept.to_string(), full.to_string(), "{header}");
            assert_eq!(kept.header_len(), full.header_len(), "{header}");
            for (k, v) in full.iter() {
                assert_eq!(kept.get(k), Some(v), "{header}");
            }
        }
        assert!("congo=t61rcWkgMzE,rojo=1"
            .parse::<TraceState>()
            .expect("valid")
            .raw
            .is_some());
        assert!("a=1 , b=2"
            .parse::<TraceState>()
            .expect("valid")
            .raw
            .is_none());
        // Invalid is invalid, kept or not.
        assert!("a=1,B=2".parse::<TraceState>().is_err());
        let mut changed: TraceState = "a=1,b=2".parse().expect("valid");
        changed.insert("b", "3").expect("valid");
        assert_eq!(changed.to_string(), "b=3,a=1");
    }

    fn parse(s: &str) -> Result<TraceState, InvalidTraceState> {
        s.parse()
    }

    #[test]
    fn valid_headers() {
        let key256 = format!("k{}", "z".repeat(255));
        let value256 = "v".repeat(256);
        let level1_tenant = format!("{}@{}", "1".repeat(241), "v".repeat(14));
        let table: Vec<(String, String)> = vec![
            ("".into(), "".into()),
            (" , ,\t,".into(), "".into()),
            ("foo=1".into(), "foo=1".into()),
            ("foo=1,bar=2".into(), "foo=1,bar=2".into()),
            // Optional whitespace around commas; empty members ignored.
            (
                " foo=1 ,\tbar=2\t, ,baz=3 ,".into(),
                "foo=1,bar=2,baz=3".into(),
            ),
            ("foo=1,,,bar=2".into(), "foo=1,bar=2".into()),
            // All key characters.
            (
                "a0_-*/@x=1,congo=t61rcWkgMzE".into(),
                "a0_-*/@x=1,congo=t61rcWkgMzE".into(),
            ),
            // Level 2 keys with `@` anywhere after the first character.
            ("fw529a3039@dt=1".into(), "fw529a3039@dt=1".into()),
            (
                "foo@=1,foo@@bar=2,a@b@c=3".into(),
                "foo@=1,foo@@bar=2,a@b@c=3".into(),
            ),
            // Level 1 multi-tenant keys whose tenant starts with a digit.
            (
                "14a8fe8b-9bb7b2b1@dt=fw4".into(),
                "14a8fe8b-9bb7b2b1@dt=fw4".into(),
            ),
            (format!("{level1_tenant}=1"), format!("{level1_tenant}=1")),
            // Level 2: a key may start with a digit, with or without `@`,
            // and `@` may appear anywhere after the first character.
            ("1vendor=x,rojo=1".into(), "1vendor=x,rojo=1".into()),
            ("0=1,9z=2".into(), "0=1,9z=2".into()),
            ("1foo=1".into(), "1foo=1".into()),
            ("1@=1,1@2v=2,1@v@w=3".into(), "1@=1,1@2v=2,1@v@w=3".into()),
            (
                format!("{}@v=1", "1".repeat(242)),
                format!("{}@v=1", "1".repeat(242)),
            ),
            (
                format!("1@{}=1", "v".repeat(15)),
                format!("1@{}=1", "v".repeat(15)),
            ),
            (
                format!("9{}=1", "z".repeat(255)),
                format!("9{}=1", "z".repeat(255)),
            ),
            // A repeated key: the first member stays, the later ones go.
            ("foo=1,foo=1".into(), "foo=1".into()),
            ("foo=1,foo=2".into(), "foo=1".into()),
            (
                "foo=1,bar=2,foo=3,bar=4,baz=5".into(),
                "foo=1,bar=2,baz=5".into(),
            ),
            // Longest key and value.
            (format!("{key256}=1"), format!("{key256}=1")),
            (format!("k={value256}"), format!("k={value256}")),
            // Values: every printable character but `,` and `=`, inner and
            // leading spaces.
            (
                "k=!\"#$%&'()*+-./:;<>?@[\\]^_`{|}~ AZaz09".into(),
                "k=!\"#$%&'()*+-./:;<>?@[\\]^_`{|}~ AZaz09".into(),
            ),
            ("k= leading".into(), "k= leading".into()),
            ("k=a b".into(), "k=a b".into()),
        ];
        for (input, output) in &table {
            let state = parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(&state.to_string(), output, "{input:?}");
            assert_eq!(state.header_len(), output.len());
        }
    }

    #[test]
    fn thirty_two_members_are_fine_thirty_three_are_not() {
        let members: Vec<String> = (0..33).map(|i| format!("k{i}=v{i}")).collect();
        let state = parse(&members[..32].join(",")).unwrap();
        assert_eq!(state.len(), 32);
        assert_eq!(
            parse(&members.join(",")),
            Err(InvalidTraceState::TooManyMembers)
        );
        // Empty members do not count.
        assert_eq!(parse(&members[..32].join(",,")).unwrap().len(), 32);
        // Repeated ones do: the header is read as received.
        let repeated = format!("{},k0=again", members[..32].join(","));
        assert_eq!(parse(&repeated), Err(InvalidTraceState::TooManyMembers));
        let repeated = format!("{},k0=again", members[..31].join(","));
        assert_eq!(parse(&repeated).unwrap().get("k0"), Some("v0"));
        // The limit holds across header lines.
        let (a, b) = members.split_at(20);
        assert_eq!(
            TraceState::from_headers([a.join(",").as_str(), b.join(",").as_str()]),
            Err(InvalidTraceState::TooManyMembers)
        );
    }

    #[test]
    fn invalid_headers() {
        use InvalidTraceState::*;
        let table: Vec<(String, InvalidTraceState)> = vec![
            ("foo".into(), MissingEquals { member: 1 }),
            ("foo=1,bar".into(), MissingEquals { member: 2 }),
            // Keys.
            ("=1".into(), InvalidKey { member: 1 }),
            ("Foo=1".into(), InvalidKey { member: 1 }),
            ("foo=1,BAR=2".into(), InvalidKey { member: 2 }),
            ("_foo=1".into(), InvalidKey { member: 1 }),
            ("@foo=1".into(), InvalidKey { member: 1 }),
            ("foo.bar=1".into(), InvalidKey { member: 1 }),
            ("foo =1".into(), InvalidKey { member: 1 }),
            ("fo o=1".into(), InvalidKey { member: 1 }),
            ("föo=1".into(), InvalidKey { member: 1 }),
            ("-foo=1".into(), InvalidKey { member: 1 }),
            ("*foo=1".into(), InvalidKey { member: 1 }),
            ("/foo=1".into(), InvalidKey { member: 1 }),
            ("1Foo=1".into(), InvalidKey { member: 1 }),
            ("1vendor=x,rojo=1,2.x=3".into(), InvalidKey { member: 3 }),
            (format!("k{}=1", "z".repeat(256)), InvalidKey { member: 1 }),
            (format!("9{}=1", "z".repeat(256)), InvalidKey { member: 1 }),
            (
                format!("1{}@v=1", "1".repeat(255)),
                InvalidKey { member: 1 },
            ),
            // Values.
            ("foo=".into(), InvalidValue { member: 1 }),
            ("foo= ".into(), InvalidValue { member: 1 }),
            ("foo=1=2".into(), InvalidValue { member: 1 }),
            ("foo=a\u{7f}".into(), InvalidValue { member: 1 }),
            ("foo=a\u{1}b".into(), InvalidValue { member: 1 }),
            ("foo=a\tb".into(), InvalidValue { member: 1 }),
            ("foo=é".into(), InvalidValue { member: 1 }),
            (
                format!("foo={}", "v".repeat(257)),
                InvalidValue { member: 1 },
            ),
            // A repeated key does not excuse an invalid member after it.
            ("foo=1,foo=2,Bar=3".into(), InvalidKey { member: 3 }),
        ];
        for (input, expected) in &table {
            assert_eq!(parse(input), Err(*expected), "{input:?}");
            assert!(expected.to_string().starts_with("tracestate "));
        }
    }

    #[test]
    fn header_lines_are_one_list() {
        let state = TraceState::from_headers(["foo=1", "", "bar=2 , baz=3"]).unwrap();
        assert_eq!(state.to_string(), "foo=1,bar=2,baz=3");
        // A key repeated on a later line: the first member stays.
        for lines in [["foo=1", "foo=1"], ["foo=1", "foo=2"]] {
            let state = TraceState::from_headers(lines).unwrap();
            assert_eq!(state.to_string(), "foo=1", "{lines:?}");
        }
        // A bad member in any line discards all.
        assert_eq!(
            TraceState::from_headers(["foo=1", "bar=2,Baz=3"]),
            Err(InvalidTraceState::InvalidKey { member: 3 })
        );
        assert_eq!(
            TraceState::from_headers(Vec::<&str>::new()),
            Ok(TraceState::new())
        );
    }

    #[test]
    fn insert_moves_the_member_to_the_front() {
        let mut state = parse("a=1,b=2,c=3").unwrap();
        state.insert("b", "22").unwrap();
        assert_eq!(state.to_string(), "b=22,a=1,c=3");
        state.insert("d", "4").unwrap();
        assert_eq!(state.to_string(), "d=4,b=22,a=1,c=3");
        assert_eq!(state.get("a"), Some("1"));
        assert_eq!(state.remove("a"), Some("1".to_owned()));
        assert_eq!(state.remove("a"), None);
        assert_eq!(state.to_string(), "d=4,b=22,c=3");
        assert_eq!(
            state.iter().collect::<Vec<_>>(),
            [("d", "4"), ("b", "22"), ("c", "3")]
        );
    }

    #[test]
    fn insert_rejects_invalid_members_and_keeps_the_list() {
        let mut state = parse("a=1").unwrap();
        assert_eq!(
            state.insert("A", "1"),
            Err(InvalidTraceState::InvalidKey { member: 1 })
        );
        assert_eq!(
            state.insert("b", "x,y"),
            Err(InvalidTraceState::InvalidValue { member: 1 })
        );
        assert_eq!(
            state.insert("b", "trailing "),
            Err(InvalidTraceState::InvalidValue { member: 1 })
        );
        assert_eq!(state.to_string(), "a=1");
    }

    #[test]
    fn insert_into_a_full_list_drops_the_rightmost() {
        let header: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
        let mut state = parse(&header.join(",")).unwrap();
        state.insert("new", "1").unwrap();
        assert_eq!(state.len(), 32);
        assert_eq!(state.iter().next(), Some(("new", "1")));
        assert_eq!(state.get("k31"), None);
        assert_eq!(state.get("k30"), Some("v"));
        // Updating a member of a full list drops nothing.
        state.insert("k0", "2").unwrap();
        assert_eq!(state.len(), 32);
        assert_eq!(state.get("k30"), Some("v"));
    }

    #[test]
    fn truncation_removes_long_members_first_then_from_the_right() {
        let long1 = format!("l1={}", "x".repeat(130));
        let long2 = format!("l2={}", "y".repeat(200));
        let state = parse(&format!("a=1,{long1},b=2,{long2},c=3")).unwrap();

        // Only as many long members as needed go, rightmost first.
        let t = state.clone().truncated(state.header_len() - 1);
        assert_eq!(t.to_string(), format!("a=1,{long1},b=2,c=3"));
        // Then the other long one.
        let t = state.clone().truncated(20);
        assert_eq!(t.to_string(), "a=1,b=2,c=3");
        // Then short members from the right.
        let t = state.clone().truncated(7);
        assert_eq!(t.to_string(), "a=1,b=2");
        assert_eq!(state.clone().truncated(2).to_string(), "");
        // A list that fits is unchanged.
        assert_eq!(state.clone().truncated(512), state);
        // A 128-character member is not "long".
        let m128 = format!("m={}", "z".repeat(126));
        let t = parse(&format!("{m128},a=1")).unwrap().truncated(128);
        assert_eq!(t.to_string(), m128);
    }

    #[test]
    fn truncation_never_exceeds_the_limit() {
        let members: Vec<String> = (0..32)
            .map(|i| format!("k{i}={}", "v".repeat(i * 7 + 1)))
            .collect();
        let state = parse(&members.join(",")).unwrap();
        for max in 0..=state.header_len() + 1 {
            let t = state.clone().truncated(max);
            assert!(t.to_string().len() <= max, "{max}");
            assert_eq!(t.header_len(), t.to_string().len());
            // Whole members only.
            for (k, v) in t.iter() {
                assert_eq!(state.get(k), Some(v));
            }
        }
    }
}
