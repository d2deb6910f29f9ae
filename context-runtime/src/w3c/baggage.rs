//! W3C Baggage: ordered `key=value;property` members.

use std::fmt;

/// A property of a baggage member: `key` or `key=value` after a `;`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BaggageProperty {
    key: String,
    value: Option<String>,
}

impl BaggageProperty {
    /// A property with a key and an optional value.
    pub fn new(key: impl Into<String>, value: Option<String>) -> Self {
        BaggageProperty {
            key: key.into(),
            value,
        }
    }

    /// The property's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The property's value, if it has one.
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }
}

impl fmt::Debug for BaggageProperty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={v:?}", self.key),
            None => write!(f, "{}", self.key),
        }
    }
}

/// One baggage member: a key, a (decoded) value and its properties.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BaggageMember {
    key: String,
    value: String,
    properties: Vec<BaggageProperty>,
}

impl BaggageMember {
    /// A member without properties.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        BaggageMember {
            key: key.into(),
            value: value.into(),
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
        &self.key
    }

    /// The member's value, percent-decoded.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The member's properties, in order.
    pub fn properties(&self) -> &[BaggageProperty] {
        &self.properties
    }
}

impl fmt::Debug for BaggageMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}", self.key, self.value)?;
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
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Baggage {
    members: Vec<BaggageMember>,
}

impl Baggage {
    /// Empty baggage.
    pub const fn new() -> Self {
        Baggage {
            members: Vec::new(),
        }
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.member(key).map(BaggageMember::value)
    }

    /// The member with `key`, if present.
    pub fn member(&self, key: &str) -> Option<&BaggageMember> {
        self.members.iter().find(|m| m.key == key)
    }

    /// Sets `key` to `value` (without properties), replacing an existing member
    /// in place or appending a new one.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.insert_member(BaggageMember::new(key, value));
    }

    /// Sets a whole member, replacing one with the same key in place.
    pub fn insert_member(&mut self, member: BaggageMember) {
        match self.members.iter_mut().find(|m| m.key == member.key) {
            Some(slot) => *slot = member,
            None => self.members.push(member),
        }
    }

    /// Removes `key`, returning its member.
    pub fn remove(&mut self, key: &str) -> Option<BaggageMember> {
        let index = self.members.iter().position(|m| m.key == key)?;
        Some(self.members.remove(index))
    }

    /// The members, in order.
    pub fn members(&self) -> &[BaggageMember] {
        &self.members
    }

    /// `(key, value)` pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.members.iter().map(|m| (m.key(), m.value()))
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

impl fmt::Debug for Baggage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.members).finish()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Baggage {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut baggage = Baggage::new();
        for (k, v) in iter {
            baggage.insert(k, v);
        }
        baggage
    }
}
