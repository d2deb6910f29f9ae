//! W3C Baggage: ordered `key=value;property` members, and the `baggage` header.

use std::borrow::Cow;
use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::OnceLock;

use super::{trim_ows_str, HeaderText};

/// A key and a value in one allocation: the key, then the value.
#[derive(Clone, PartialEq, Eq, Hash)]
struct KeyValue {
    text: String,
    key_len: usize,
}

impl KeyValue {
    fn new(key: &str, value: &str) -> Self {
        let mut text = String::with_capacity(key.len() + value.len());
        text.push_str(key);
        text.push_str(value);
        KeyValue {
            text,
            key_len: key.len(),
        }
    }

    /// The key, and the value percent-decoded (bytes that are not UTF-8
    /// become U+FFFD).
    fn decoded(key: &str, value: &str) -> Self {
        if !value.contains('%') {
            return KeyValue::new(key, value);
        }
        let mut bytes = Vec::with_capacity(key.len() + value.len());
        bytes.extend_from_slice(key.as_bytes());
        percent_decode(value, &mut bytes);
        let text = String::from_utf8(bytes).unwrap_or_else(|e| {
            let bytes = e.into_bytes();
            let (key, value) = bytes.split_at(key.len());
            let mut text = String::from_utf8_lossy(key).into_owned();
            text.push_str(&String::from_utf8_lossy(value));
            text
        });
        KeyValue {
            text,
            key_len: key.len(),
        }
    }

    fn key(&self) -> &str {
        self.text.get(..self.key_len).unwrap_or_default()
    }

    fn value(&self) -> &str {
        self.text.get(self.key_len..).unwrap_or_default()
    }
}

/// A property of a baggage member: `key` or `key=value` after a `;`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BaggageProperty {
    key_value: KeyValue,
    has_value: bool,
}

impl BaggageProperty {
    /// A property with a key and an optional value.
    pub fn new(key: impl Into<String>, value: Option<String>) -> Self {
        BaggageProperty {
            key_value: KeyValue::new(&key.into(), value.as_deref().unwrap_or_default()),
            has_value: value.is_some(),
        }
    }

    /// The property's key.
    pub fn key(&self) -> &str {
        self.key_value.key()
    }

    /// The property's value, if it has one.
    pub fn value(&self) -> Option<&str> {
        self.has_value.then(|| self.key_value.value())
    }
}

impl fmt::Debug for BaggageProperty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.value() {
            Some(v) => write!(f, "{}={v:?}", self.key()),
            None => write!(f, "{}", self.key()),
        }
    }
}

/// One baggage member: a key, a (decoded) value and its properties.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BaggageMember {
    key_value: KeyValue,
    properties: Vec<BaggageProperty>,
}

impl BaggageMember {
    /// A member without properties.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        BaggageMember {
            key_value: KeyValue::new(&key.into(), &value.into()),
            properties: Vec::new(),
        }
    }

    /// This member with one more property.
    pub fn with_property(mut self, property: BaggageProperty) -> Self {
        self.properties.push(property);
        self
    }

    /// The member's key.
    pub fn key(&self) -> &str {
        self.key_value.key()
    }

    /// The member's value, percent-decoded.
    pub fn value(&self) -> &str {
        self.key_value.value()
    }

    /// The member's properties, in order.
    pub fn properties(&self) -> &[BaggageProperty] {
        &self.properties
    }
}

impl fmt::Debug for BaggageMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}", self.key(), self.value())?;
        for p in &self.properties {
            write!(f, ";{p:?}")?;
        }
        Ok(())
    }
}

/// W3C baggage: an ordered list of members with unique keys.
///
/// ```
/// use context_runtime::w3c::Baggage;
///
/// let mut baggage = Baggage::new();
/// baggage.insert("region", "eu");
/// baggage.insert("region", "us");
/// assert_eq!(baggage.get("region"), Some("us"));
/// assert_eq!(baggage.len(), 1);
/// ```
///
/// # The `baggage` header
///
/// [`FromStr`] and [`Baggage::from_headers`] read the header of W3C Baggage;
/// [`Display`](fmt::Display) writes it.
///
/// ```
/// use context_runtime::w3c::Baggage;
///
/// let baggage: Baggage = "userId = alice%20b , bad key=1, isProduction=false;ttl=60".parse().unwrap();
/// assert_eq!(baggage.get("userId"), Some("alice b"));
/// assert_eq!(baggage.get("bad key"), None); // malformed: skipped, the rest kept
/// let ttl = &baggage.member("isProduction").unwrap().properties()[0];
/// assert_eq!((ttl.key(), ttl.value()), ("ttl", Some("60")));
/// assert_eq!(baggage.to_string(), "userId=alice%20b,isProduction=false;ttl=60");
/// ```
///
/// - Members are `key=value`, followed by properties `;key` or `;key=value`,
///   with optional spaces and tabs around every `,`, `;` and `=`. Keys are
///   HTTP tokens (RFC 9110 `tchar`); values are percent-decoded, and a
///   sequence that is not UTF-8 becomes U+FFFD. Property values are decoded
///   and encoded the same way.
/// - Parsing is tolerant: a member that does not match the grammar is skipped
///   and the others are kept. [`Baggage::parse_strict`] reports it instead.
/// - Keys are unique in a `Baggage`. The spec does not promise unique keys in
///   a header (it asks senders not to repeat one); when a key comes again,
///   the later member wins, in the place of the earlier one, as
///   [`Baggage::insert_member`] would do (and if the later member no longer
///   fits in the limits, the key is left out).
/// - Raw non-ASCII in a member (`e=é`) makes that member malformed, so it is
///   skipped and the others kept; [`Baggage::from_header_bytes`] reads header
///   values that are not UTF-8 the same way.
/// - On output, everything outside the spec's `baggage-octet` is
///   percent-encoded, and so is `%` itself: spaces, `"`, `,`, `;`, `\`,
///   control characters and non-ASCII characters (as their UTF-8 bytes).
///   A member whose key, or a property key, is not a token cannot be written
///   and is left out.
/// - Limits: everything is propagated up to 64 members and 8192 bytes of
///   header. Beyond that whole members are dropped, never a part of one: the
///   members are taken in order, and one that would break a limit is left
///   out. This holds when parsing (so the result can always be sent on) and
///   when writing. A `Baggage` built in code may hold more; only what is
///   written is limited. The limits are [`BAGGAGE_MAX_MEMBERS`](super::BAGGAGE_MAX_MEMBERS)
///   and [`BAGGAGE_MAX_BYTES`](super::BAGGAGE_MAX_BYTES).
/// - Parsing is linear in its input and holds at most 64 members at any
///   time, however long the header: a 40,000-member header gives its first
///   64 members.
/// - A header that is already clean (no whitespace, no empty, malformed or
///   repeated member, well within the limits) is validated by one scan and
///   kept as its text: [`len`](Baggage::len) is known, [`get`](Baggage::get)
///   reads the text, writing it again is a copy when no value is
///   percent-encoded, and the member list is built (once) only when
///   something asks for it ([`members`](Baggage::members), a change…).
#[derive(Clone, Default)]
pub struct Baggage {
    /// The members, in order. Empty while `raw` holds the header.
    members: Vec<BaggageMember>,
    /// The header as received, when it is clean (see [`Baggage::scan`]).
    raw: Option<RawBaggage>,
}

/// A clean `baggage` header, its members parsed on first use.
#[derive(Clone)]
struct RawBaggage {
    text: HeaderText,
    /// The number of members (every member of a clean header is kept).
    len: usize,
    /// Whether a value or property value is percent-encoded (then the text
    /// is not necessarily what `Display` writes).
    escaped: bool,
    parsed: OnceLock<Vec<BaggageMember>>,
}

impl RawBaggage {
    fn parse(text: &str) -> Vec<BaggageMember> {
        let mut collector = Collector::default();
        for raw in text.split(',') {
            collector.offer_raw(raw);
        }
        collector.members
    }
}

impl PartialEq for Baggage {
    fn eq(&self, other: &Self) -> bool {
        self.members() == other.members()
    }
}

impl Eq for Baggage {}

impl Hash for Baggage {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.members().hash(state);
    }
}

/// What [`Baggage::scan`] found in a clean header.
struct Scanned {
    /// The number of members.
    len: usize,
    escaped: bool,
    /// The members `reject` refused, one bit each.
    refused: u64,
    /// Where each member starts and its key ends (the member ends before
    /// the next one starts, the last one at the end of the text).
    keys: [(u16, u16); Baggage::MAX_MEMBERS],
}

impl Scanned {
    fn new() -> Scanned {
        Scanned {
            len: 0,
            escaped: false,
            refused: 0,
            keys: [(0, 0); Baggage::MAX_MEMBERS],
        }
    }
}

/// The position of the first byte from `i` on that is not a `tchar`.
#[inline(always)]
fn skip_token(bytes: &[u8], mut i: usize) -> usize {
    while let Some(&c) = bytes.get(i) {
        if CLASS[usize::from(c)] & TOKEN == 0 {
            break;
        }
        i += 1;
    }
    i
}

/// The position of the first byte from `i` on that is not a
/// `baggage-octet`, counting the `%` on the way.
#[inline(always)]
fn skip_value(bytes: &[u8], mut i: usize, escapes: &mut usize) -> usize {
    while let Some(&c) = bytes.get(i) {
        let class = CLASS[usize::from(c)];
        if class & OCTET == 0 {
            break;
        }
        *escapes += usize::from(class & PERCENT != 0);
        i += 1;
    }
    i
}

/// The members of a scanned header that were not refused, as they are,
/// separated by commas.
fn kept_members(bytes: &[u8], scanned: &Scanned) -> HeaderText {
    let keys = scanned.keys.get(..scanned.len).unwrap_or_default();
    let mut buf = [0u8; HeaderText::INLINE];
    let mut heap = Vec::new();
    let mut len = 0;
    for (i, &(start, _)) in keys.iter().enumerate() {
        if scanned.refused & (1 << i) != 0 {
            continue;
        }
        let end = keys
            .get(i + 1)
            .map_or(bytes.len(), |&(next, _)| usize::from(next) - 1);
        let member = bytes.get(usize::from(start)..end).unwrap_or_default();
        let comma = usize::from(len > 0);
        let at = len + comma;
        len = at + member.len();
        match buf.get_mut(at..len) {
            Some(slot) if heap.is_empty() => {
                slot.copy_from_slice(member);
                if comma == 1 {
                    buf[at - 1] = b',';
                }
            }
            _ => {
                // Longer than fits inline: go on on the heap.
                if heap.is_empty() {
                    heap.reserve(bytes.len());
                    heap.extend_from_slice(buf.get(..at - comma).unwrap_or_default());
                }
                if comma == 1 {
                    heap.push(b',');
                }
                heap.extend_from_slice(member);
            }
        }
    }
    if heap.is_empty() {
        // `len <= INLINE`, which fits a `u8`.
        HeaderText::Inline(len as u8, buf)
    } else {
        HeaderText::Boxed(heap.into_boxed_slice())
    }
}

impl Baggage {
    /// Empty baggage.
    pub const fn new() -> Self {
        Baggage {
            members: Vec::new(),
            raw: None,
        }
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        if let Some(raw) = &self.raw {
            if !raw.escaped {
                // Clean: no whitespace, keys unique, values as they are.
                return raw.text.as_str().split(',').find_map(|member| {
                    let head = member.split(';').next().unwrap_or_default();
                    let (k, v) = head.split_once('=')?;
                    (k == key).then_some(v)
                });
            }
        }
        self.member(key).map(BaggageMember::value)
    }

    /// The member with `key`, if present.
    pub fn member(&self, key: &str) -> Option<&BaggageMember> {
        self.members().iter().find(|m| m.key() == key)
    }

    /// The members, for a change: a kept header is parsed (once) and dropped.
    fn members_mut(&mut self) -> &mut Vec<BaggageMember> {
        if let Some(raw) = self.raw.take() {
            self.members = match raw.parsed.into_inner() {
                Some(members) => members,
                None => RawBaggage::parse(raw.text.as_str()),
            };
        }
        &mut self.members
    }

    /// Checks a header value, without building the member list, for the
    /// form that can be kept as it is: members `key=value;property…`
    /// without whitespace, each valid, no key repeated,
    /// at most [`Baggage::MAX_MEMBERS`], and short enough that, however its
    /// escapes decode, it is written within [`Baggage::MAX_LEN`]. `None`
    /// when it is not of that form (the full parse then decides what is
    /// kept). Members whose key `reject` refuses are counted apart.
    fn scan(text: &str, reject: &dyn Fn(&str) -> bool, scanned: &mut Scanned) -> Option<()> {
        let bytes = text.as_bytes();
        if bytes.len() > Baggage::MAX_LEN {
            return None;
        }
        // Where each member starts and its key ends, at most 64 of them.
        let keys = &mut scanned.keys;
        let (mut len, mut escapes, mut refused) = (0usize, 0usize, 0u64);
        let mut i = 0;
        loop {
            // key=value
            let start = i;
            i = skip_token(bytes, i);
            if i == start || bytes.get(i) != Some(&b'=') {
                return None;
            }
            let key = text.get(start..i)?;
            i = skip_value(bytes, i + 1, &mut escapes);
            // ;property or ;property=value
            while bytes.get(i) == Some(&b';') {
                let property = i + 1;
                i = skip_token(bytes, property);
                if i == property {
                    return None;
                }
                if bytes.get(i) == Some(&b'=') {
                    i = skip_value(bytes, i + 1, &mut escapes);
                }
            }
            // At most 64 keys, compared only when their lengths agree.
            let earlier = keys.get(..len)?;
            if earlier.iter().any(|&(s, e)| {
                usize::from(e - s) == key.len()
                    && bytes.get(usize::from(s)..usize::from(e)) == Some(key.as_bytes())
            }) {
                return None;
            }
            // `i` and `start` are within `MAX_LEN`, which fits a `u16`.
            *keys.get_mut(len)? = (start as u16, (start + key.len()) as u16);
            if reject(key) {
                refused |= 1 << len;
            }
            len += 1;
            match bytes.get(i) {
                None => break,
                Some(b',') => i += 1,
                Some(_) => return None,
            }
        }
        // An escape is 3 bytes that may be written as up to 9 (U+FFFD).
        if bytes.len() + 6 * escapes > Baggage::MAX_LEN {
            return None;
        }
        scanned.len = len;
        scanned.escaped = escapes > 0;
        scanned.refused = refused;
        Some(())
    }

    /// Reads one `baggage` header value, leaving out the members whose key
    /// `reject` refuses. A clean value (see
    /// [the `baggage` header](Baggage#the-baggage-header)) is checked by one
    /// scan and kept as its text, without the refused members (a clean
    /// header is within the limits, so every member is kept before they
    /// are left out, as the full parse does); any other is parsed and
    /// filtered.
    pub(crate) fn from_header_without(text: &str, reject: &dyn Fn(&str) -> bool) -> Baggage {
        let text = trim_ows_str(text);
        if text.is_empty() {
            return Baggage::new();
        }
        let mut scanned = Scanned::new();
        match Baggage::scan(text, reject, &mut scanned) {
            Some(()) => {
                let kept = scanned.len - scanned.refused.count_ones() as usize;
                if kept == 0 {
                    return Baggage::new();
                }
                let text = if scanned.refused == 0 {
                    HeaderText::new(text.as_bytes())
                } else {
                    kept_members(text.as_bytes(), &scanned)
                };
                Baggage {
                    members: Vec::new(),
                    raw: Some(RawBaggage {
                        text,
                        len: kept,
                        escaped: scanned.escaped,
                        parsed: OnceLock::new(),
                    }),
                }
            }
            None => Baggage::parse_all([text], reject),
        }
    }

    /// Sets `key` to `value` (without properties), replacing an existing member
    /// in place or appending a new one.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.insert_member(BaggageMember::new(key, value));
    }

    /// Sets a whole member, replacing one with the same key in place.
    pub fn insert_member(&mut self, member: BaggageMember) {
        let members = self.members_mut();
        match members.iter_mut().find(|m| m.key() == member.key()) {
            Some(slot) => *slot = member,
            None => members.push(member),
        }
    }

    /// Removes `key`, returning its member.
    pub fn remove(&mut self, key: &str) -> Option<BaggageMember> {
        let members = self.members_mut();
        let index = members.iter().position(|m| m.key() == key)?;
        Some(members.remove(index))
    }

    /// The members, in order (parsed on first use from a kept header).
    pub fn members(&self) -> &[BaggageMember] {
        match &self.raw {
            Some(raw) => raw
                .parsed
                .get_or_init(|| RawBaggage::parse(raw.text.as_str())),
            None => &self.members,
        }
    }

    /// `(key, value)` pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.members().iter().map(|m| (m.key(), m.value()))
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        match &self.raw {
            Some(raw) => raw.len,
            None => self.members.len(),
        }
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Up to this many members, a repeated key is found by a scan; beyond, by
/// a hash map.
const SCAN_LIMIT: usize = 8;

#[cfg(test)]
thread_local! {
    /// Key comparisons and map look-ups made while collecting members: the
    /// tests check that they grow linearly with the input.
    static PROBES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Counts `n` probes (tests only).
fn probe(n: usize) {
    #[cfg(test)]
    PROBES.with(|p| p.set(p.get() + n));
    #[cfg(not(test))]
    let _ = n;
}

/// Collects members one at a time within the limits, in bounded memory: at
/// most [`Baggage::MAX_MEMBERS`] members are held, so each member costs a
/// bounded amount of work beyond its own parse, and a parse is linear in its
/// input.
#[derive(Default)]
struct Collector<'a> {
    members: Vec<BaggageMember>,
    /// The members' lengths as written, without the separating commas.
    len: usize,
    /// Where each key is, once there are more than [`SCAN_LIMIT`] members
    /// (keys borrowed from the header where they can be).
    index: Option<HashMap<Cow<'a, str>, usize>>,
}

impl<'a> Collector<'a> {
    /// Parses one raw member (a piece of header between commas) and offers
    /// it; an empty or malformed one is skipped.
    fn offer_raw(&mut self, raw: &'a str) {
        let raw = trim_ows_str(raw);
        if raw.is_empty() {
            return;
        }
        let Ok((key, member)) = parse_member(raw) else {
            return;
        };
        // Parsed keys are tokens, so the member can be written.
        if let Some(len) = member_len(&member, true) {
            self.offer(Cow::Borrowed(key), member, len);
        }
    }

    /// Takes `member` (of `len` bytes as written) if it fits: a new key at
    /// the end, a repeated one in the place of the earlier member; a
    /// repeated key whose new member no longer fits is removed.
    fn offer(&mut self, key: Cow<'a, str>, member: BaggageMember, len: usize) {
        match self.find(&key) {
            Some(i) => {
                let Some(earlier) = self.members.get(i) else {
                    return;
                };
                // Its length as it was counted (a parsed key is a token, so
                // both ways of counting agree).
                let old = member_len(earlier, false).unwrap_or_default();
                let separators = self.members.len() - 1;
                let new_len = self.len - old + len;
                let Some(slot) = self.members.get_mut(i) else {
                    return;
                };
                if new_len + separators <= Baggage::MAX_LEN {
                    *slot = member;
                    self.len = new_len;
                } else {
                    self.members.remove(i);
                    self.len -= old;
                    self.reindex();
                }
            }
            None => {
                let separators = self.members.len();
                if self.members.len() >= Baggage::MAX_MEMBERS
                    || self.len + len + separators > Baggage::MAX_LEN
                {
                    return;
                }
                if let Some(index) = &mut self.index {
                    index.insert(key, self.members.len());
                }
                self.members.push(member);
                self.len += len;
                if self.index.is_none() && self.members.len() > SCAN_LIMIT {
                    self.reindex();
                }
            }
        }
    }

    /// The position of the member with `key`.
    fn find(&self, key: &str) -> Option<usize> {
        match &self.index {
            Some(index) => {
                probe(1);
                index.get(key).copied()
            }
            None => {
                probe(self.members.len());
                self.members.iter().position(|m| m.key() == key)
            }
        }
    }

    /// Rebuilds the index after members moved (at most 64 of them).
    fn reindex(&mut self) {
        if self.members.len() <= SCAN_LIMIT {
            self.index = None;
            return;
        }
        probe(self.members.len());
        self.index = Some(
            self.members
                .iter()
                .enumerate()
                .map(|(i, m)| (Cow::Owned(m.key().to_owned()), i))
                .collect(),
        );
    }

    fn finish(self) -> Baggage {
        Baggage {
            members: self.members,
            raw: None,
        }
    }
}

/// The `baggage` header.
impl Baggage {
    /// The most members that are read and propagated
    /// ([`BAGGAGE_MAX_MEMBERS`](super::BAGGAGE_MAX_MEMBERS)).
    pub const MAX_MEMBERS: usize = 64;

    /// The most bytes of header that are read and propagated
    /// ([`BAGGAGE_MAX_BYTES`](super::BAGGAGE_MAX_BYTES)).
    pub const MAX_LEN: usize = 8192;

    /// Parses several `baggage` header lines as one list, in order (as an HTTP
    /// recipient combines repeated field lines with `,`). Tolerant: malformed
    /// members are skipped. See [the `baggage` header](Baggage#the-baggage-header).
    pub fn from_headers<'a, I>(values: I) -> Baggage
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut values = values.into_iter();
        let Some(first) = values.next() else {
            return Baggage::new();
        };
        match values.next() {
            None => Baggage::from_header_without(first, &|_| false),
            Some(second) => {
                Baggage::parse_all([first, second].into_iter().chain(values), &|_| false)
            }
        }
    }

    /// The full tolerant parse of several header values, without the
    /// members whose key `reject` refuses.
    fn parse_all<'a>(
        values: impl IntoIterator<Item = &'a str>,
        reject: &dyn Fn(&str) -> bool,
    ) -> Baggage {
        let mut collector = Collector::default();
        for value in values {
            for raw in value.split(',') {
                collector.offer_raw(raw);
            }
        }
        let mut baggage = collector.finish();
        baggage.members.retain(|m| !reject(m.key()));
        baggage
    }

    /// Like [`from_headers`](Baggage::from_headers), for header values as
    /// raw bytes (an HTTP or broker header need not be text): a member with
    /// bytes that are not ASCII (raw UTF-8 or anything else) is skipped like
    /// any malformed member, and the others are kept.
    ///
    /// ```
    /// use context_runtime::w3c::Baggage;
    ///
    /// let baggage = Baggage::from_header_bytes([&b"a=1,e=\xc3\xa9,f=\xff,b=2"[..]]);
    /// assert_eq!(baggage.to_string(), "a=1,b=2");
    /// ```
    pub fn from_header_bytes<'a, I>(values: I) -> Baggage
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let mut collector = Collector::default();
        for value in values {
            for raw in value.split(|&c| c == b',') {
                // `,` is ASCII, so it never splits a UTF-8 sequence; a member
                // that is not UTF-8 is malformed.
                if let Ok(raw) = std::str::from_utf8(raw) {
                    collector.offer_raw(raw);
                }
            }
        }
        collector.finish()
    }

    /// Baggage from `(key, value)` pairs that arrive from outside (a
    /// carrier's JSON object, for example), within the same limits as a
    /// parsed header: the pairs are taken in order, a repeated key replaces
    /// the earlier value in its place, and a pair that would break a limit
    /// is left out ([`BAGGAGE_MAX_MEMBERS`](super::BAGGAGE_MAX_MEMBERS)
    /// members, [`BAGGAGE_MAX_BYTES`](super::BAGGAGE_MAX_BYTES) bytes as
    /// written). Keys and values are taken as they are (not percent-decoded);
    /// a key that is not a token is kept, counted at its own length. Linear
    /// in the number of pairs.
    ///
    /// [`FromIterator`] (`collect`) keeps every pair instead, for baggage
    /// built in code.
    ///
    /// ```
    /// use context_runtime::w3c::{Baggage, BAGGAGE_MAX_MEMBERS};
    ///
    /// let baggage = Baggage::from_pairs((0..40_000).map(|i| (format!("k{i}"), "v")));
    /// assert_eq!(baggage.len(), BAGGAGE_MAX_MEMBERS);
    /// ```
    pub fn from_pairs<K, V, I>(pairs: I) -> Baggage
    where
        K: Into<String>,
        V: Into<String>,
        I: IntoIterator<Item = (K, V)>,
    {
        let mut collector = Collector::default();
        for (key, value) in pairs {
            let member = BaggageMember::new(key, value);
            let len = member_len(&member, false).unwrap_or_default();
            collector.offer(Cow::Owned(member.key().to_owned()), member, len);
        }
        collector.finish()
    }

    /// Parses one `baggage` header value, rejecting anything the tolerant
    /// parse would skip, merge or drop: a malformed or empty member, a
    /// repeated key, or more than the limits (64 members, 8192 bytes as
    /// written). An empty or blank value is an empty baggage.
    ///
    /// ```
    /// use context_runtime::w3c::{Baggage, InvalidBaggage};
    ///
    /// assert_eq!(Baggage::parse_strict("a=1, b=2")?.len(), 2);
    /// assert_eq!(
    ///     Baggage::parse_strict("a=1,b=\"quoted\""),
    ///     Err(InvalidBaggage::InvalidValue { member: 2 })
    /// );
    /// # Ok::<(), InvalidBaggage>(())
    /// ```
    pub fn parse_strict(value: &str) -> Result<Baggage, InvalidBaggage> {
        let mut baggage = Baggage::new();
        if trim_ows_str(value).is_empty() {
            return Ok(baggage);
        }
        let mut budget = Budget::default();
        for (i, raw) in value.split(',').enumerate() {
            let member = i + 1;
            let raw = trim_ows_str(raw);
            if raw.is_empty() {
                return Err(InvalidBaggage::EmptyMember { member });
            }
            let (key, parsed) = parse_member(raw).map_err(|e| e.at(member))?;
            if baggage.member(key).is_some() {
                return Err(InvalidBaggage::DuplicateKey { member });
            }
            if !budget.admit(&parsed) {
                return Err(if budget.count == Self::MAX_MEMBERS {
                    InvalidBaggage::TooManyMembers
                } else {
                    InvalidBaggage::TooLong
                });
            }
            baggage.members.push(parsed);
        }
        Ok(baggage)
    }
}

impl fmt::Debug for Baggage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.members()).finish()
    }
}

/// Every pair, in order, as [`Baggage::insert`] would take them (a repeated
/// key replaces the earlier value in its place), without limits: for baggage
/// built in code. Linear in the number of pairs. For pairs from outside, see
/// [`Baggage::from_pairs`].
impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Baggage {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut members: Vec<BaggageMember> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (k, v) in iter {
            let member = BaggageMember::new(k, v);
            let found = if members.len() <= SCAN_LIMIT {
                members.iter().position(|m| m.key() == member.key())
            } else {
                if index.is_empty() {
                    index = members
                        .iter()
                        .enumerate()
                        .map(|(i, m)| (m.key().to_owned(), i))
                        .collect();
                }
                index.get(member.key()).copied()
            };
            match found.and_then(|i| members.get_mut(i)) {
                Some(slot) => *slot = member,
                None => {
                    if !index.is_empty() {
                        index.insert(member.key().to_owned(), members.len());
                    }
                    members.push(member);
                }
            }
        }
        Baggage { members, raw: None }
    }
}

impl FromStr for Baggage {
    type Err = Infallible;

    /// Parses one header value, tolerantly: this never fails. See
    /// [`Baggage::from_headers`] for several, and [`Baggage::parse_strict`]
    /// for errors.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Baggage::from_headers([s]))
    }
}

/// The `baggage` header value: members joined by `,`, values percent-encoded,
/// within 64 members and 8192 bytes (see [the `baggage` header](Baggage#the-baggage-header)).
impl fmt::Display for Baggage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(raw) = &self.raw {
            if !raw.escaped {
                // Clean and unescaped: exactly what the loop below writes.
                return f.write_str(raw.text.as_str());
            }
        }
        let mut budget = Budget::default();
        for member in self.members() {
            if !budget.admit(member) {
                continue;
            }
            if budget.count > 1 {
                f.write_str(",")?;
            }
            f.write_str(member.key())?;
            f.write_str("=")?;
            write_encoded(f, member.value())?;
            for property in &member.properties {
                f.write_str(";")?;
                f.write_str(property.key())?;
                if let Some(value) = property.value() {
                    f.write_str("=")?;
                    write_encoded(f, value)?;
                }
            }
        }
        Ok(())
    }
}

/// What has been written so far, against the limits.
#[derive(Default)]
struct Budget {
    count: usize,
    len: usize,
}

impl Budget {
    /// Whether `member` can be written after those already admitted, and if
    /// so, counts it.
    fn admit(&mut self, member: &BaggageMember) -> bool {
        if self.count >= Baggage::MAX_MEMBERS {
            return false;
        }
        let Some(len) = member_len(member, true) else {
            return false;
        };
        let len = len + usize::from(self.count > 0);
        if self.len + len > Baggage::MAX_LEN {
            return false;
        }
        self.count += 1;
        self.len += len;
        true
    }
}

/// The length of `member` as written, or, when `require_tokens`, `None` when
/// its key or a property key is not a token (so it cannot be written).
fn member_len(member: &BaggageMember, require_tokens: bool) -> Option<usize> {
    if require_tokens && !is_token(member.key()) {
        return None;
    }
    let mut len = member.key().len() + 1 + encoded_len(member.value());
    for property in &member.properties {
        if require_tokens && !is_token(property.key()) {
            return None;
        }
        len += 1 + property.key().len();
        if let Some(value) = property.value() {
            len += 1 + encoded_len(value);
        }
    }
    Some(len)
}

/// Why one member does not match the grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MemberError {
    MissingEquals,
    InvalidKey,
    InvalidValue,
    InvalidProperty,
}

impl MemberError {
    fn at(self, member: usize) -> InvalidBaggage {
        match self {
            MemberError::MissingEquals => InvalidBaggage::MissingEquals { member },
            MemberError::InvalidKey => InvalidBaggage::InvalidKey { member },
            MemberError::InvalidValue => InvalidBaggage::InvalidValue { member },
            MemberError::InvalidProperty => InvalidBaggage::InvalidProperty { member },
        }
    }
}

/// Parses one member (without the surrounding whitespace), returning its key
/// as it appears in `raw` and the decoded member.
fn parse_member(raw: &str) -> Result<(&str, BaggageMember), MemberError> {
    let mut parts = raw.split(';');
    let head = parts.next().unwrap_or_default();
    let (key, value) = head.split_once('=').ok_or(MemberError::MissingEquals)?;
    let (key, value) = (trim_ows_str(key), trim_ows_str(value));
    if !is_token(key) {
        return Err(MemberError::InvalidKey);
    }
    if !is_value(value) {
        return Err(MemberError::InvalidValue);
    }
    let mut member = BaggageMember {
        key_value: KeyValue::decoded(key, value),
        properties: Vec::new(),
    };
    for property in parts {
        let property = match property.split_once('=') {
            Some((k, v)) => {
                let (k, v) = (trim_ows_str(k), trim_ows_str(v));
                if !is_token(k) || !is_value(v) {
                    return Err(MemberError::InvalidProperty);
                }
                BaggageProperty {
                    key_value: KeyValue::decoded(k, v),
                    has_value: true,
                }
            }
            None => {
                let k = trim_ows_str(property);
                if !is_token(k) {
                    return Err(MemberError::InvalidProperty);
                }
                BaggageProperty {
                    key_value: KeyValue::new(k, ""),
                    has_value: false,
                }
            }
        };
        member.properties.push(property);
    }
    Ok((key, member))
}

/// An HTTP token: one or more `tchar` (RFC 9110, section 5.6.2).
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// `tchar` (RFC 9110, section 5.6.2), by table.
fn is_tchar(c: u8) -> bool {
    CLASS[usize::from(c)] & TOKEN != 0
}

/// A byte's classes, for the scans: [`TOKEN`], [`OCTET`], [`PERCENT`].
static CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        table[c] = if is_tchar_slow(b) { TOKEN } else { 0 }
            | if is_baggage_octet_slow(b) { OCTET } else { 0 }
            | if b == b'%' { PERCENT } else { 0 };
        c += 1;
    }
    table
};
/// A `tchar`.
const TOKEN: u8 = 1;
/// A `baggage-octet`.
const OCTET: u8 = 2;
/// `%`.
const PERCENT: u8 = 4;

/// `tchar` (RFC 9110, section 5.6.2).
const fn is_tchar_slow(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// `*baggage-octet`.
fn is_value(s: &str) -> bool {
    s.bytes().all(is_baggage_octet)
}

/// `%x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E`: printable ASCII without
/// space, `"`, `,`, `;` and `\`.
fn is_baggage_octet(c: u8) -> bool {
    CLASS[usize::from(c)] & OCTET != 0
}

/// [`is_baggage_octet`], computed.
const fn is_baggage_octet_slow(c: u8) -> bool {
    matches!(c, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

/// Whether `c` is written as itself (everything else is percent-encoded).
fn is_unreserved(c: u8) -> bool {
    is_baggage_octet(c) && c != b'%'
}

/// Percent-decodes `value` onto `bytes`. A `%` that is not followed by two
/// hex digits is kept as it is.
fn percent_decode(value: &str, bytes: &mut Vec<u8>) {
    let mut rest = value.as_bytes();
    while let Some((&c, tail)) = rest.split_first() {
        let escaped = match (c, tail) {
            (b'%', [hi, lo, ..]) => hex(*hi).zip(hex(*lo)).map(|(hi, lo)| hi << 4 | lo),
            _ => None,
        };
        match escaped {
            Some(byte) => {
                bytes.push(byte);
                rest = tail.get(2..).unwrap_or_default();
            }
            None => {
                bytes.push(c);
                rest = tail;
            }
        }
    }
}

fn hex(c: u8) -> Option<u8> {
    char::from(c)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// The length of `value` percent-encoded.
fn encoded_len(value: &str) -> usize {
    value
        .bytes()
        .map(|c| if is_unreserved(c) { 1 } else { 3 })
        .sum()
}

/// Writes `value` percent-encoded (uppercase hex, as RFC 3986 recommends).
fn write_encoded(f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
    let mut start = 0;
    for (i, c) in value.bytes().enumerate() {
        if is_unreserved(c) {
            continue;
        }
        if start < i {
            // `start..i` is a run of ASCII bytes, so it lies on char boundaries.
            f.write_str(value.get(start..i).ok_or(fmt::Error)?)?;
        }
        write!(f, "%{c:02X}")?;
        start = i + 1;
    }
    f.write_str(value.get(start..).ok_or(fmt::Error)?)
}

/// Why [`Baggage::parse_strict`] rejected a `baggage` header value.
///
/// `member` is the 1-based position of the offending member in the
/// comma-separated list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidBaggage {
    /// An empty member (`a=1,,b=2`, or a trailing comma).
    EmptyMember {
        /// The member's position.
        member: usize,
    },
    /// A member without `=` between key and value.
    MissingEquals {
        /// The member's position.
        member: usize,
    },
    /// A key that is not an HTTP token.
    InvalidKey {
        /// The member's position.
        member: usize,
    },
    /// A value with a character outside `baggage-octet` (a space, `"`, `,`,
    /// `;`, `\`, a control or non-ASCII character) that should have been
    /// percent-encoded.
    InvalidValue {
        /// The member's position.
        member: usize,
    },
    /// A property that is neither `key` nor `key=value`.
    InvalidProperty {
        /// The member's position.
        member: usize,
    },
    /// A key that an earlier member already has.
    DuplicateKey {
        /// The member's position.
        member: usize,
    },
    /// More than 64 members.
    TooManyMembers,
    /// More than 8192 bytes, as written.
    TooLong,
}

impl fmt::Display for InvalidBaggage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidBaggage::EmptyMember { member } => {
                write!(f, "baggage member {member} is empty")
            }
            InvalidBaggage::MissingEquals { member } => {
                write!(
                    f,
                    "baggage member {member} has no `=` between key and value"
                )
            }
            InvalidBaggage::InvalidKey { member } => write!(
                f,
                "baggage member {member} has an invalid key: expected an HTTP token \
                 (letters, digits and ``!#$%&'*+-.^_`|~``)"
            ),
            InvalidBaggage::InvalidValue { member } => write!(
                f,
                "baggage member {member} has an invalid value: spaces, `\"`, `,`, `;`, `\\`, \
                 control and non-ASCII characters must be percent-encoded"
            ),
            InvalidBaggage::InvalidProperty { member } => write!(
                f,
                "baggage member {member} has an invalid property: expected `;key` or `;key=value`"
            ),
            InvalidBaggage::DuplicateKey { member } => {
                write!(
                    f,
                    "baggage member {member} repeats the key of an earlier member"
                )
            }
            InvalidBaggage::TooManyMembers => {
                write!(f, "baggage has more than {} members", Baggage::MAX_MEMBERS)
            }
            InvalidBaggage::TooLong => {
                write!(f, "baggage is longer than {} bytes", Baggage::MAX_LEN)
            }
        }
    }
}

impl std::error::Error for InvalidBaggage {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_header_reads_as_the_full_parse() {
        let headers = [
            "userId=alice,serverNode=DF%2028,isProduction=false",
            "a=1;p;q=2,b=,c=%zz,d=%FF%FE,e=x%2Cy",
            "k=%41%42",
            "a=1,a=2",
            "a=1, b=2",
            "a=1,,b=2",
            "a=1,b=\"q\"",
            "only",
            "a=1;=x",
            "",
        ];
        for header in headers {
            let kept = Baggage::from_headers([header]);
            let full = Baggage::parse_all([header], &|_| false);
            assert!(full.raw.is_none());
            assert_eq!(kept.len(), full.len(), "{header}");
            assert_eq!(kept.to_string(), full.to_string(), "{header}");
            assert_eq!(kept.members(), full.members(), "{header}");
            for member in full.members() {
                assert_eq!(kept.get(member.key()), Some(member.value()), "{header}");
            }
            assert_eq!(kept.get("missing"), None);
        }
        // The first three are kept as their text (escapes are decoded on
        // first use); a repeated key, spaces, an empty or a malformed member
        // are not.
        for header in &headers[..3] {
            assert!(Baggage::from_headers([*header]).raw.is_some(), "{header}");
        }
        for header in &headers[3..] {
            assert!(Baggage::from_headers([*header]).raw.is_none(), "{header}");
        }
    }

    #[test]
    fn kept_headers_inline_and_on_the_heap_agree_with_the_full_parse() {
        // Around the inline size, with refused members first, in the middle
        // and last: the kept text is what the full parse keeps.
        let refuse = |key: &str| key.starts_with("tenant");
        for n in 0..40 {
            let long = "v".repeat(n);
            for header in [
                format!("tenant=t,a={long},b=2"),
                format!("a={long},tenant=t,b=2"),
                format!("a={long},b=2,tenant=t"),
                format!("a={long},b={long},tenantX=t,c={long}"),
                format!("a=1{long},b=2"),
            ] {
                let kept = Baggage::from_header_without(&header, &refuse);
                let parsed = Baggage::parse_all([header.as_str()], &refuse);
                assert!(kept.raw.is_some(), "{header}");
                assert_eq!(kept.to_string(), parsed.to_string(), "{header}");
                assert_eq!(kept.len(), parsed.len(), "{header}");
                assert_eq!(kept.members(), parsed.members(), "{header}");
            }
        }
    }

    #[test]
    fn refused_members_never_stay_in_a_kept_header() {
        let refuse = |key: &str| key.ends_with("tenantId") || key.starts_with("ctx.");
        let header = "tenantId=victim,a=1,x.tenantId=v2;p,ctx.sig=k1:abc,b=2";
        let kept = Baggage::from_header_without(header, &refuse);
        assert!(kept.raw.is_some());
        assert_eq!(kept.to_string(), "a=1,b=2");
        assert_eq!(kept.len(), 2);
        assert_eq!(kept.get("tenantId"), None);
        assert!(kept.members().iter().all(|m| !refuse(m.key())));
        // Every member refused: empty.
        assert!(Baggage::from_header_without("tenantId=x", &refuse).is_empty());
        // Not clean: parsed, and filtered all the same.
        let parsed = Baggage::from_header_without("tenantId=victim , a=1", &refuse);
        assert!(parsed.raw.is_none());
        assert_eq!(parsed.to_string(), "a=1");
    }

    #[test]
    fn a_kept_header_changes_like_a_parsed_one() {
        let mut kept = Baggage::from_headers(["a=1,b=2"]);
        let mut full = Baggage::parse_all(["a=1,b=2"], &|_| false);
        for baggage in [&mut kept, &mut full] {
            baggage.insert("a", "x y");
            baggage.insert("c", "3");
            assert!(baggage.remove("b").is_some());
        }
        assert_eq!(kept, full);
        assert_eq!(kept.to_string(), "a=x%20y,c=3");
    }

    fn parse(s: &str) -> Baggage {
        s.parse().unwrap_or_default()
    }

    #[test]
    fn valid_headers() {
        let table: &[(&str, &str)] = &[
            ("", ""),
            (" \t ", ""),
            ("key1=value1", "key1=value1"),
            ("key1=value1,key2=value2", "key1=value1,key2=value2"),
            // Optional whitespace around every separator.
            (
                " key1 = value1 ; p1 ; p2 = v2 ,\tkey2\t=\tvalue2\t",
                "key1=value1;p1;p2=v2,key2=value2",
            ),
            // Every token character in a key; every baggage-octet in a value.
            (
                "!#$&'*+-.^_`|~AZaz09=!#$&'()*+-./:<=>?@[]^_`{|}~AZaz09",
                "!#$&'*+-.^_`|~AZaz09=!#$&'()*+-./:<=>?@[]^_`{|}~AZaz09",
            ),
            // An empty value and an empty property value.
            ("key=", "key="),
            ("key=;p=", "key=;p="),
            // Percent-encoding: decoded, and written back for what needs it.
            ("key=a%20b%2C%3B%22%5C", "key=a%20b%2C%3B%22%5C"),
            ("key=%61%62c", "key=abc"),
            ("key=%e2%82%ac", "key=%E2%82%AC"),
            ("key=100%25", "key=100%25"),
            // A `%` without two hex digits is kept as a `%`.
            ("key=100%", "key=100%25"),
            ("key=%zz%4", "key=%25zz%254"),
            // Empty members are skipped.
            ("a=1,,b=2, ,", "a=1,b=2"),
            // Malformed members are skipped, the others kept.
            ("a=1,no-equals,b=2", "a=1,b=2"),
            ("a=1,=2,b=2", "a=1,b=2"),
            ("a=1,k(ey)=2,b=2", "a=1,b=2"),
            ("a=1,k y=2,b=2", "a=1,b=2"),
            ("a=1,k=v w,b=2", "a=1,b=2"),
            ("a=1,k=\"v\",b=2", "a=1,b=2"),
            ("a=1,k=v\\w,b=2", "a=1,b=2"),
            ("a=1,k=é,b=2", "a=1,b=2"),
            ("a=1,k=v;,b=2", "a=1,b=2"),
            ("a=1,k=v;p q,b=2", "a=1,b=2"),
            ("a=1,k=v;=x,b=2", "a=1,b=2"),
            ("a=1,k=v;p=x y,b=2", "a=1,b=2"),
            // `=` is a baggage-octet, so it may appear in a value.
            ("a=1,k=v=w,b=2", "a=1,k=v=w,b=2"),
            // A repeated key: the later member wins, in the earlier place.
            ("a=1,b=2,a=3;p", "a=3;p,b=2"),
        ];
        for (input, output) in table {
            let baggage = parse(input);
            assert_eq!(baggage.to_string(), *output, "{input:?}");
        }
    }

    #[test]
    fn values_are_decoded() {
        let baggage = parse("a=%E2%82%AC%20x, b=%FF%FEok, c=%F0%9F%98;p=%41");
        assert_eq!(baggage.get("a"), Some("€ x"));
        // Not UTF-8 after decoding: U+FFFD.
        assert_eq!(baggage.get("b"), Some("\u{FFFD}\u{FFFD}ok"));
        assert_eq!(baggage.get("c"), Some("\u{FFFD}"));
        let member = baggage.member("c").unwrap();
        assert_eq!(member.properties()[0].value(), Some("A"));
    }

    #[test]
    fn output_encodes_everything_outside_baggage_octet() {
        let mut baggage = Baggage::new();
        baggage.insert("k", "a b,c;d\"e\\f%g\u{7f}h\u{0}é€");
        let header = baggage.to_string();
        assert_eq!(header, "k=a%20b%2Cc%3Bd%22e%5Cf%25g%7Fh%00%C3%A9%E2%82%AC");
        assert_eq!(parse(&header), baggage);
    }

    #[test]
    fn properties_are_kept() {
        let baggage = parse("k=v;flag;ttl = 60 ;note=a%20b");
        let member = baggage.member("k").unwrap();
        let props: Vec<_> = member
            .properties()
            .iter()
            .map(|p| (p.key(), p.value()))
            .collect();
        assert_eq!(
            props,
            [("flag", None), ("ttl", Some("60")), ("note", Some("a b"))]
        );
        assert_eq!(baggage.to_string(), "k=v;flag;ttl=60;note=a%20b");
    }

    #[test]
    fn header_lines_are_one_list() {
        let baggage = Baggage::from_headers(["a=1,b=2", "", "c=3", "a=4"]);
        assert_eq!(baggage.to_string(), "a=4,b=2,c=3");
    }

    #[test]
    fn members_that_cannot_be_written_are_left_out() {
        let mut baggage = Baggage::new();
        baggage.insert("bad key", "1");
        baggage.insert("", "2");
        baggage.insert("good", "3");
        baggage.insert_member(
            BaggageMember::new("prop", "4").with_property(BaggageProperty::new("p q", None)),
        );
        assert_eq!(baggage.to_string(), "good=3");
    }

    #[test]
    fn sixty_four_members_are_kept_and_no_more() {
        let members: Vec<String> = (0..70).map(|i| format!("k{i}=v")).collect();
        let baggage = parse(&members.join(","));
        assert_eq!(baggage.len(), 64);
        assert_eq!(baggage.get("k63"), Some("v"));
        assert_eq!(baggage.get("k64"), None);

        // A `Baggage` built in code may hold more; only 64 are written.
        let big: Baggage = (0..70).map(|i| (format!("k{i}"), "v")).collect();
        assert_eq!(big.len(), 70);
        assert_eq!(big.to_string(), members[..64].join(","));
    }

    #[test]
    fn eight_kilobytes_are_kept_whole_members_only() {
        // 8 members of 1000 bytes, then one that no longer fits, then a small one.
        let fill = |i: usize| format!("k{i}={}", "v".repeat(1000 - 3));
        let mut members: Vec<String> = (0..8).map(fill).collect();
        let exact = members.join(",");
        assert_eq!(exact.len(), 8007);
        members.push(format!("big={}", "x".repeat(500)));
        members.push(format!("s={}", "y".repeat(182)));
        let baggage = parse(&members.join(","));
        let header = baggage.to_string();
        assert_eq!(header.len(), Baggage::MAX_LEN);
        assert_eq!(baggage.get("big"), None);
        assert_eq!(baggage.len(), 9);
        assert_eq!(header, format!("{exact},{}", members[9]));

        // The header is full: even the smallest member no longer fits.
        members.push("t=".to_owned());
        let baggage = parse(&members.join(","));
        assert_eq!(baggage.len(), 9);
        assert_eq!(baggage.get("t"), None);

        // The limit counts the encoded length.
        let mut encoded = Baggage::new();
        encoded.insert("a", " ".repeat(2000));
        encoded.insert("b", " ".repeat(2000));
        assert_eq!(encoded.to_string().len(), 6002);
        assert_eq!(parse(&encoded.to_string()).len(), 1);
    }

    #[test]
    fn raw_non_ascii_drops_only_its_member() {
        assert_eq!(parse("a=1,e=é,b=2").to_string(), "a=1,b=2");
        assert_eq!(parse("a=1,é=1,b=2;p=é,c=3").to_string(), "a=1,c=3");
        let bytes: &[&[u8]] = &[b"a=1,e=\xc3\xa9,f=\xff\xfe,b=2", b"\x80", b"c=3"];
        let baggage = Baggage::from_header_bytes(bytes.iter().copied());
        assert_eq!(baggage.to_string(), "a=1,b=2,c=3");
        assert_eq!(
            Baggage::from_header_bytes([&b"x=1"[..], b"y=2"]),
            Baggage::from_headers(["x=1", "y=2"])
        );
    }

    /// A header of `n` distinct members, and the probes its parse made.
    fn parse_counting(n: usize) -> (Baggage, usize) {
        let header = (0..n)
            .map(|i| format!("k{i}=v{i}"))
            .collect::<Vec<_>>()
            .join(",");
        PROBES.with(|p| p.set(0));
        let baggage = parse(&header);
        (baggage, PROBES.with(std::cell::Cell::get))
    }

    #[test]
    fn parsing_is_bounded_and_linear() {
        for n in [4_000, 40_000] {
            let (baggage, probes) = parse_counting(n);
            assert_eq!(baggage.len(), Baggage::MAX_MEMBERS, "{n}");
            assert_eq!(baggage.get("k63"), Some("v63"));
            assert_eq!(baggage.get("k64"), None);
            // A bounded number of look-ups per member: past the first few
            // members, one map look-up each.
            assert!(probes <= 2 * n, "{n} members: {probes} probes");
        }
        // A repeated key after the limit still replaces its member in place.
        let mut header: Vec<String> = (0..40_000).map(|i| format!("k{i}=v")).collect();
        header.push("k0=last".into());
        let baggage = parse(&header.join(","));
        assert_eq!(baggage.len(), 64);
        assert_eq!(baggage.members()[0].value(), "last");
        // Strict parsing stops at the first member past the limit.
        assert_eq!(
            Baggage::parse_strict(&header.join(",")),
            Err(InvalidBaggage::TooManyMembers)
        );
    }

    #[test]
    fn a_later_member_that_no_longer_fits_drops_its_key() {
        let big = "x".repeat(5000);
        let header = format!("a=1,b={big},a={big},c=2");
        let baggage = parse(&header);
        assert_eq!(baggage.to_string(), format!("b={big},c=2"));
        // One that fits replaces the earlier member in place.
        let header = format!("a=1,b={big},a=2,c=3");
        assert_eq!(parse(&header).to_string(), format!("a=2,b={big},c=3"));
        // Room freed by a dropped key is used by later members.
        let header = format!("a={big},a={big}{big},b={big}");
        assert_eq!(parse(&header).to_string(), format!("b={big}"));
    }

    #[test]
    fn pairs_from_outside_are_bounded_and_collect_is_not() {
        let pairs = || (0..40_000).map(|i| (format!("k{i}"), "v"));
        let bounded = Baggage::from_pairs(pairs());
        assert_eq!(bounded.len(), Baggage::MAX_MEMBERS);
        assert_eq!(bounded.get("k63"), Some("v"));
        assert!(bounded.to_string().len() <= Baggage::MAX_LEN);
        // Keys that are not tokens are kept (and counted at their length).
        let odd = Baggage::from_pairs([("not a token", "1"), ("k", "2"), ("k", "3")]);
        assert_eq!(
            odd.iter().collect::<Vec<_>>(),
            [("not a token", "1"), ("k", "3")]
        );
        let long = Baggage::from_pairs([("a", "x".repeat(9000)), ("b", "1".into())]);
        assert_eq!(long.iter().collect::<Vec<_>>(), [("b", "1")]);
        // `collect` keeps everything, repeated keys in place, in linear time.
        let mut all: Baggage = pairs().chain([("k5".to_owned(), "w")]).collect();
        assert_eq!(all.len(), 40_000);
        assert_eq!(all.members()[5].value(), "w");
        all.insert("k39999", "z");
        assert_eq!(all.len(), 40_000);
    }

    #[test]
    fn strict_parse_reports_the_first_bad_member() {
        use InvalidBaggage::*;
        let table: &[(&str, InvalidBaggage)] = &[
            ("a=1,,b=2", EmptyMember { member: 2 }),
            ("a=1,", EmptyMember { member: 2 }),
            ("a", MissingEquals { member: 1 }),
            ("a=1,b", MissingEquals { member: 2 }),
            ("a b=1", InvalidKey { member: 1 }),
            ("=1", InvalidKey { member: 1 }),
            ("a=1 2", InvalidValue { member: 1 }),
            ("a=é", InvalidValue { member: 1 }),
            ("a=1;", InvalidProperty { member: 1 }),
            ("a=1;p=\"x\"", InvalidProperty { member: 1 }),
            ("a=1,a=2", DuplicateKey { member: 2 }),
        ];
        for (input, expected) in table {
            assert_eq!(Baggage::parse_strict(input), Err(*expected), "{input:?}");
            assert!(expected.to_string().starts_with("baggage "));
        }
        let many: Vec<String> = (0..65).map(|i| format!("k{i}=v")).collect();
        assert_eq!(Baggage::parse_strict(&many.join(",")), Err(TooManyMembers));
        assert_eq!(
            Baggage::parse_strict(&many[..64].join(",")).unwrap().len(),
            64
        );
        let long = format!("k={}", "v".repeat(8191));
        assert_eq!(Baggage::parse_strict(&long), Err(TooLong));
        assert_eq!(Baggage::parse_strict(""), Ok(Baggage::new()));
        assert_eq!(
            Baggage::parse_strict(" a = 1 ; p ").unwrap().to_string(),
            "a=1;p"
        );
    }
}
