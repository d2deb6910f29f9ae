//! Signed identity: a [`Keyring`] signs and verifies the identity a context
//! carries between your own services (HMAC-SHA256 from the RustCrypto
//! crates), and [`UntrustedIdentity`] says why an identity was refused.
//!
//! A signature is the text `key-id:issued-at:tag`: the id of the key that
//! signed, the issue time in Unix seconds, and the 32-byte HMAC-SHA256 tag in
//! unpadded base64url. The tag covers, in one unambiguous encoding, the trace
//! id, the tenant, the user, the issue time and the job id when there is one.
//! It rides beside the identity: the `"sig"` field of a JSON carrier (which
//! Node's nestjs-context ignores), and the `ctx.sig` baggage member on
//! headers and in a child's environment.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::model::tenant::TenantId;
use crate::model::trace::TraceId;
use crate::model::user::{UserId, UserRef};

type HmacSha256 = Hmac<Sha256>;

/// The baggage member that carries the signature on headers and in the
/// environment. Every key in the `ctx.` namespace is reserved: such members
/// are never taken from, or forwarded as, plain baggage.
pub const SIGNATURE_BAGGAGE_KEY: &str = "ctx.sig";

/// The reserved baggage namespace (see [`SIGNATURE_BAGGAGE_KEY`]).
pub(crate) const RESERVED_PREFIX: &str = "ctx.";

/// The fewest bytes a secret may have (the HMAC-SHA256 block is 64).
pub const MIN_SECRET_LEN: usize = 32;

/// The most bytes a key id may have.
pub const MAX_KEY_ID_LEN: usize = 32;

/// How old a signature may be by default: one day, so that a job that waits
/// in a backlog, or is retried, is still accepted.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// How far in the future an issue time may be (clock skew between hosts).
const MAX_SKEW_SECS: u64 = 60;

/// The length of the base64url text of a 32-byte tag.
const TAG_TEXT_LEN: usize = 43;

/// Whether a baggage key looks like identity: the reserved `ctx.`
/// namespace, or a key whose letters and digits end in `tenant`,
/// `tenantid`, `tenantref`, `user`, `userid`, `userref` or `principal`
/// (case-insensitive: `acme.tenant`, `x-tenant-id`, `tenantId`, `userRef`,
/// `enduser.id`).
pub(crate) fn is_identity_shaped(key: &str) -> bool {
    /// The suffixes, each as its lowercase letters packed into an integer
    /// (the last letter in the lowest byte), with its length.
    const fn packed(suffix: &[u8]) -> (u128, usize) {
        let mut value = 0u128;
        let mut i = 0;
        while i < suffix.len() {
            value = value << 8 | suffix[i] as u128;
            i += 1;
        }
        (value, suffix.len())
    }
    const SUFFIXES: [(u128, usize); 7] = [
        packed(b"tenant"),
        packed(b"tenantid"),
        packed(b"tenantref"),
        packed(b"user"),
        packed(b"userid"),
        packed(b"userref"),
        packed(b"principal"),
    ];
    const LONGEST: usize = 9;
    let bytes = key.as_bytes();
    // `ctx.` in any case: the three letters lowercased by one bit, the dot
    // as it is.
    if let Some(&[a, b, c, d]) = bytes.first_chunk::<4>() {
        let prefix = RESERVED_PREFIX.as_bytes();
        let prefix = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        if u32::from_le_bytes([a, b, c, d]) | 0x0020_2020 == prefix {
            return true;
        }
    }
    // The last (up to) 9 letters and digits, lowercased, packed in order.
    // Every suffix ends in `t`, `d`, `f`, `r` or `l`: most keys are done at
    // their last letter.
    let mut tail = 0u128;
    let mut n = 0;
    for &b in bytes.iter().rev() {
        if !b.is_ascii_alphanumeric() {
            continue;
        }
        let b = b.to_ascii_lowercase();
        if n == 0 && !matches!(b, b't' | b'd' | b'f' | b'r' | b'l') {
            return false;
        }
        tail |= u128::from(b) << (8 * n);
        n += 1;
        if n == LONGEST {
            break;
        }
    }
    SUFFIXES
        .iter()
        .any(|&(suffix, len)| n >= len && tail & ((1u128 << (8 * len)) - 1) == suffix)
}

/// What a signature covers: the identity of one context, and the job it
/// rides with, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims<'a> {
    /// The trace id.
    pub trace_id: TraceId,
    /// The tenant, if any.
    pub tenant: Option<&'a TenantId>,
    /// The user, if any.
    pub user: Option<&'a UserRef>,
    /// The job id, where the identity rides with a job that has one.
    pub job_id: Option<&'a str>,
}

/// Keys that sign and verify identity: one signing key with its key id, and
/// any number of older keys that still verify (rotation), with a maximum
/// signature age.
///
/// ```
/// use std::time::Duration;
/// use context_runtime::{Claims, Context, Keyring, TenantId, UntrustedIdentity};
///
/// let secret = [7u8; 32]; // from your secret store, at least 32 bytes
/// let keyring = Keyring::new("k2", &secret)?
///     .with_verifying_key("k1", &[1u8; 32])? // the previous key, during rotation
///     .with_max_age(Duration::from_secs(3600));
///
/// let cx = Context::root().with_tenant(TenantId::new("acme")?);
/// let claims = Claims { trace_id: cx.trace_id(), tenant: cx.tenant(), user: None, job_id: None };
/// let signature = keyring.sign(&claims);
/// assert!(signature.starts_with("k2:"));
/// keyring.verify(&signature, &claims)?;
///
/// // The same signature under another tenant is refused.
/// let other = TenantId::new("victim")?;
/// let forged = Claims { tenant: Some(&other), ..claims };
/// assert_eq!(keyring.verify(&signature, &forged), Err(UntrustedIdentity::BadSignature));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Cloning is cheap (the keys are shared). The secrets never appear in
/// `Debug` output.
#[derive(Clone)]
pub struct Keyring {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    signing: Key,
    verifying: Vec<Key>,
    max_age: Duration,
}

/// One key: its id, and the HMAC state already keyed with its secret (so
/// each signature costs only the message, not the key schedule).
#[derive(Clone)]
struct Key {
    id: Box<str>,
    mac: HmacSha256,
}

impl Key {
    fn new(id: &str, secret: &[u8]) -> Result<Key, InvalidKey> {
        if id.is_empty()
            || id.len() > MAX_KEY_ID_LEN
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(InvalidKey::KeyId { id: id.to_owned() });
        }
        if secret.len() < MIN_SECRET_LEN {
            return Err(InvalidKey::ShortSecret { len: secret.len() });
        }
        let mac = HmacSha256::new_from_slice(secret)
            .map_err(|_| InvalidKey::ShortSecret { len: secret.len() })?;
        Ok(Key { id: id.into(), mac })
    }

    fn mac(&self, claims: &Claims<'_>, issued_at: u64) -> HmacSha256 {
        let mut mac = self.mac.clone();
        feed(&mut mac, claims, issued_at);
        mac
    }
}

/// The claims in one unambiguous encoding: a version tag, then every field
/// with its length or a presence byte, so no two claims encode alike.
fn feed(mac: &mut HmacSha256, claims: &Claims<'_>, issued_at: u64) {
    fn text(mac: &mut HmacSha256, s: &str) {
        mac.update(&(s.len() as u32).to_be_bytes());
        mac.update(s.as_bytes());
    }
    mac.update(b"context-runtime/identity/v1\0");
    mac.update(&claims.trace_id.to_hex());
    mac.update(&issued_at.to_be_bytes());
    match claims.tenant {
        Some(tenant) => {
            mac.update(&[1]);
            text(mac, tenant.as_str());
        }
        None => mac.update(&[0]),
    }
    match claims.user {
        Some(user) => {
            mac.update(&[1]);
            text(mac, user.kind());
            match user.id() {
                UserId::Number(n) => {
                    mac.update(b"n");
                    mac.update(&n.to_be_bytes());
                }
                UserId::Text(t) => {
                    mac.update(b"t");
                    text(mac, t);
                }
            }
        }
        None => mac.update(&[0]),
    }
    match claims.job_id {
        Some(job) => {
            mac.update(&[1]);
            text(mac, job);
        }
        None => mac.update(&[0]),
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl Keyring {
    /// A keyring that signs with `secret` under `key_id` (and verifies
    /// signatures made with it).
    ///
    /// # Errors
    ///
    /// [`InvalidKey`]: a key id that is empty, longer than
    /// [`MAX_KEY_ID_LEN`] or not made of ASCII letters, digits, `-`, `_` and
    /// `.`; a secret shorter than [`MIN_SECRET_LEN`] bytes.
    pub fn new(key_id: &str, secret: &[u8]) -> Result<Keyring, InvalidKey> {
        Ok(Keyring {
            inner: Arc::new(Inner {
                signing: Key::new(key_id, secret)?,
                verifying: Vec::new(),
                max_age: DEFAULT_MAX_AGE,
            }),
        })
    }

    /// Also verifies signatures made with `secret` under `key_id` (a key
    /// being rotated out, or one of another service). A key id already in
    /// the keyring is replaced.
    ///
    /// # Errors
    ///
    /// As [`Keyring::new`].
    pub fn with_verifying_key(
        mut self,
        key_id: &str,
        secret: &[u8],
    ) -> Result<Keyring, InvalidKey> {
        let key = Key::new(key_id, secret)?;
        let inner = Arc::make_mut(&mut self.inner);
        inner.verifying.retain(|k| k.id != key.id);
        inner.verifying.push(key);
        Ok(self)
    }

    /// The oldest a signature may be (default [`DEFAULT_MAX_AGE`], one day).
    pub fn with_max_age(mut self, max_age: Duration) -> Keyring {
        Arc::make_mut(&mut self.inner).max_age = max_age;
        self
    }

    /// The id of the signing key.
    pub fn key_id(&self) -> &str {
        &self.inner.signing.id
    }

    /// The maximum signature age.
    pub fn max_age(&self) -> Duration {
        self.inner.max_age
    }

    /// Signs `claims` now, with the signing key.
    pub fn sign(&self, claims: &Claims<'_>) -> String {
        self.sign_at(claims, now_secs())
    }

    /// Signs `claims` as issued at `issued_at` (Unix seconds).
    pub fn sign_at(&self, claims: &Claims<'_>, issued_at: u64) -> String {
        let key = &self.inner.signing;
        let tag = key.mac(claims, issued_at).finalize().into_bytes();
        let mut out = String::with_capacity(key.id.len() + 12 + TAG_TEXT_LEN);
        out.push_str(&key.id);
        out.push(':');
        out.push_str(&issued_at.to_string());
        out.push(':');
        URL_SAFE_NO_PAD.encode_string(tag, &mut out);
        out
    }

    /// Verifies `signature` for `claims`, now.
    ///
    /// # Errors
    ///
    /// The [`UntrustedIdentity`] that says why: a malformed signature, an
    /// unknown key id, a tag that does not match (the claims were changed,
    /// or the key is wrong), or an issue time too old or in the future.
    pub fn verify(&self, signature: &str, claims: &Claims<'_>) -> Result<(), UntrustedIdentity> {
        self.verify_at(signature, claims, now_secs())
    }

    /// Verifies `signature` for `claims` as if it were `now` (Unix seconds).
    ///
    /// # Errors
    ///
    /// As [`Keyring::verify`].
    pub fn verify_at(
        &self,
        signature: &str,
        claims: &Claims<'_>,
        now: u64,
    ) -> Result<(), UntrustedIdentity> {
        let malformed = |reason| UntrustedIdentity::MalformedSignature { reason };
        if signature.len() > MAX_KEY_ID_LEN + 22 + TAG_TEXT_LEN {
            return Err(malformed("too long"));
        }
        let mut parts = signature.splitn(3, ':');
        let (Some(key_id), Some(issued), Some(tag)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("expected `key-id:issued-at:tag`"));
        };
        if issued.is_empty() || !issued.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed("the issue time is not a number of seconds"));
        }
        let issued_at: u64 = issued
            .parse()
            .map_err(|_| malformed("the issue time is out of range"))?;
        if tag.len() != TAG_TEXT_LEN {
            return Err(malformed("the tag is not 32 bytes of base64url"));
        }
        let mut bytes = [0u8; 33];
        let decoded = URL_SAFE_NO_PAD
            .decode_slice(tag, &mut bytes)
            .map_err(|_| malformed("the tag is not base64url"))?;
        let bytes = bytes.get(..decoded).unwrap_or_default();
        let inner = &self.inner;
        let key = std::iter::once(&inner.signing)
            .chain(&inner.verifying)
            .find(|k| *k.id == *key_id)
            .ok_or_else(|| UntrustedIdentity::UnknownKey {
                key_id: key_id.chars().take(MAX_KEY_ID_LEN).collect(),
            })?;
        // Constant-time comparison of the tags.
        key.mac(claims, issued_at)
            .verify_slice(bytes)
            .map_err(|_| UntrustedIdentity::BadSignature)?;
        if issued_at > now.saturating_add(MAX_SKEW_SECS) {
            return Err(UntrustedIdentity::IssuedInFuture {
                ahead_secs: issued_at - now,
            });
        }
        let age = now.saturating_sub(issued_at);
        if age > inner.max_age.as_secs() {
            return Err(UntrustedIdentity::Expired {
                age_secs: age,
                max_age_secs: inner.max_age.as_secs(),
            });
        }
        Ok(())
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verifying: Vec<&str> = self.inner.verifying.iter().map(|k| &*k.id).collect();
        f.debug_struct("Keyring")
            .field("signing_key_id", &&*self.inner.signing.id)
            .field("verifying_key_ids", &verifying)
            .field("max_age", &self.inner.max_age)
            .finish_non_exhaustive()
    }
}

/// Why a key could not go into a [`Keyring`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidKey {
    /// The key id is empty, too long, or has a character other than ASCII
    /// letters, digits, `-`, `_` and `.`.
    KeyId {
        /// The key id as given.
        id: String,
    },
    /// The secret is shorter than [`MIN_SECRET_LEN`] bytes.
    ShortSecret {
        /// Its length.
        len: usize,
    },
}

impl fmt::Display for InvalidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidKey::KeyId { id } => write!(
                f,
                "a key id has 1 to {MAX_KEY_ID_LEN} ASCII letters, digits, `-`, `_` or `.`, not {id:?}"
            ),
            InvalidKey::ShortSecret { len } => write!(
                f,
                "a signing secret has at least {MIN_SECRET_LEN} bytes, this one has {len}"
            ),
        }
    }
}

impl std::error::Error for InvalidKey {}

/// Why the identity a context claims was not trusted: the same error on
/// every wire (carrier, broker headers, HTTP, environment).
///
/// ```
/// use context_runtime::UntrustedIdentity;
///
/// assert_eq!(UntrustedIdentity::Unsigned.code(), "unsigned");
/// assert_eq!(UntrustedIdentity::BadSignature.code(), "bad_signature");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UntrustedIdentity {
    /// The context names a tenant or user without a signature, and the
    /// consumer requires one.
    Unsigned,
    /// The signature is not `key-id:issued-at:tag`.
    MalformedSignature {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The signature names a key the keyring does not hold.
    UnknownKey {
        /// The key id it names.
        key_id: String,
    },
    /// The tag does not match: the identity was changed after signing, or
    /// signed with another secret.
    BadSignature,
    /// The signature is older than the keyring's maximum age.
    Expired {
        /// Its age, in seconds.
        age_secs: u64,
        /// The maximum, in seconds.
        max_age_secs: u64,
    },
    /// The signature was issued in the future (beyond a minute of skew).
    IssuedInFuture {
        /// How far ahead, in seconds.
        ahead_secs: u64,
    },
    /// An identity resolver refused the request's identity (for example an
    /// invalid tenant in a verified claim).
    Refused {
        /// The resolver's reason.
        reason: String,
    },
}

impl UntrustedIdentity {
    /// A short, stable code for logs and records: `unsigned`,
    /// `malformed_signature`, `unknown_key`, `bad_signature`, `expired`,
    /// `issued_in_future` or `refused`.
    pub fn code(&self) -> &'static str {
        match self {
            UntrustedIdentity::Unsigned => "unsigned",
            UntrustedIdentity::MalformedSignature { .. } => "malformed_signature",
            UntrustedIdentity::UnknownKey { .. } => "unknown_key",
            UntrustedIdentity::BadSignature => "bad_signature",
            UntrustedIdentity::Expired { .. } => "expired",
            UntrustedIdentity::IssuedInFuture { .. } => "issued_in_future",
            UntrustedIdentity::Refused { .. } => "refused",
        }
    }
}

impl fmt::Display for UntrustedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UntrustedIdentity::Unsigned => f.write_str(
                "the identity is not signed and this consumer requires a signature \
                 (sign it at the producer with the same keyring)",
            ),
            UntrustedIdentity::MalformedSignature { reason } => {
                write!(f, "the identity's signature is malformed: {reason}")
            }
            UntrustedIdentity::UnknownKey { key_id } => write!(
                f,
                "the identity is signed with key {key_id:?}, which this keyring does not hold"
            ),
            UntrustedIdentity::BadSignature => f.write_str(
                "the identity's signature does not match: it was changed after signing \
                 or signed with another secret",
            ),
            UntrustedIdentity::Expired {
                age_secs,
                max_age_secs,
            } => write!(
                f,
                "the identity's signature is {age_secs} s old, older than the maximum of {max_age_secs} s"
            ),
            UntrustedIdentity::IssuedInFuture { ahead_secs } => write!(
                f,
                "the identity's signature is issued {ahead_secs} s in the future"
            ),
            UntrustedIdentity::Refused { reason } => {
                write!(f, "the identity was refused: {reason}")
            }
        }
    }
}

impl std::error::Error for UntrustedIdentity {}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims<'a>(tenant: &'a TenantId, user: Option<&'a UserRef>) -> Claims<'a> {
        Claims {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".parse().expect("valid"),
            tenant: Some(tenant),
            user,
            job_id: Some("job-1"),
        }
    }

    #[test]
    fn a_signature_verifies_only_for_what_it_covers() {
        let ring = Keyring::new("k1", &[9; 32]).expect("key");
        let acme = TenantId::new("acme").expect("valid");
        let user = UserRef::user(42).expect("valid");
        let text_user = UserRef::user("42").expect("valid");
        let c = claims(&acme, Some(&user));
        let sig = ring.sign_at(&c, 1000);
        assert_eq!(ring.verify_at(&sig, &c, 1000), Ok(()));

        let victim = TenantId::new("victim").expect("valid");
        for changed in [
            Claims {
                tenant: Some(&victim),
                ..c
            },
            Claims { tenant: None, ..c },
            Claims { user: None, ..c },
            Claims {
                user: Some(&text_user),
                ..c
            },
            Claims { job_id: None, ..c },
            Claims {
                job_id: Some("job-2"),
                ..c
            },
            Claims {
                trace_id: TraceId::random(),
                ..c
            },
        ] {
            assert_eq!(
                ring.verify_at(&sig, &changed, 1000),
                Err(UntrustedIdentity::BadSignature),
                "{changed:?}"
            );
        }
        // The issue time is covered too.
        let moved = sig.replacen(":1000:", ":1001:", 1);
        assert_eq!(
            ring.verify_at(&moved, &c, 1001),
            Err(UntrustedIdentity::BadSignature)
        );
    }

    #[test]
    fn identity_shaped_keys() {
        for key in [
            "tenantId",
            "userRef",
            "acme.tenant",
            "ACME.TENANT",
            "x-tenant-id",
            "tenant_ref",
            "enduser.id",
            "acme.user",
            "auth.principal",
            "ctx.sig",
            "CTX.anything",
        ] {
            assert!(is_identity_shaped(key), "{key}");
        }
        for key in [
            "region",
            "tenantTier",
            "userAgent",
            "username",
            "ctx",
            "context",
        ] {
            assert!(!is_identity_shaped(key), "{key}");
        }
    }

    #[test]
    fn rotation_age_and_malformed_signatures() {
        let old = Keyring::new("k1", &[1; 32]).expect("key");
        let new = Keyring::new("k2", &[2; 32])
            .expect("key")
            .with_verifying_key("k1", &[1; 32])
            .expect("key")
            .with_max_age(Duration::from_secs(60));
        let acme = TenantId::new("acme").expect("valid");
        let c = claims(&acme, None);
        assert_eq!(new.verify_at(&old.sign_at(&c, 100), &c, 100), Ok(()));
        assert_eq!(
            old.verify_at(&new.sign_at(&c, 100), &c, 100),
            Err(UntrustedIdentity::UnknownKey {
                key_id: "k2".into()
            })
        );
        let sig = new.sign_at(&c, 100);
        assert!(matches!(
            new.verify_at(&sig, &c, 161),
            Err(UntrustedIdentity::Expired { age_secs: 61, .. })
        ));
        assert!(matches!(
            new.verify_at(&sig, &c, 0),
            Err(UntrustedIdentity::IssuedInFuture { ahead_secs: 100 })
        ));
        for bad in [
            "",
            "k2",
            "k2:100",
            "k2:x:AAAA",
            "k2:-1:AAAA",
            "k2:100:short",
            "k2:99999999999999999999999:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "k2:100:!AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(
                matches!(
                    new.verify_at(bad, &c, 100),
                    Err(UntrustedIdentity::MalformedSignature { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(Keyring::new("k", &[0; 31]).is_err());
        assert!(Keyring::new("a:b", &[0; 32]).is_err());
        assert!(!format!("{new:?}").contains("[2"));
    }
}
