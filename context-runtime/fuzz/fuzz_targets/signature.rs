//! The signature verifier: any signature text against any claims is refused
//! with a typed reason, never a panic, unless it is the keyring's own
//! signature of exactly those claims; a genuine signature verifies, and
//! refuses every other tenant, job id and key.
#![no_main]

use context_runtime::{Claims, Keyring, TenantId, TraceId};
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\n');
    let signature = parts.next().unwrap_or_default();
    let tenant = parts.next().and_then(|t| TenantId::new(t).ok());
    let job_id = parts.next();
    let issued_at = parts
        .next()
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(NOW);

    let keyring = Keyring::new("k1", &[7u8; 32]).expect("a valid key");
    let trace_id = TraceId::from_bytes([9; 16]).expect("not all zero");
    let claims = Claims {
        trace_id,
        tenant: tenant.as_ref(),
        user: None,
        job_id,
    };

    let genuine = keyring.sign_at(&claims, NOW);
    assert_eq!(keyring.verify_at(&genuine, &claims, NOW), Ok(()));
    match keyring.verify_at(signature, &claims, NOW) {
        Ok(()) => assert_eq!(signature, genuine, "only the genuine signature verifies"),
        Err(refused) => {
            let _ = (refused.code(), refused.to_string());
        }
    }

    // The genuine signature never covers other claims or another key.
    let other = TenantId::new("fuzz-other-tenant").expect("valid");
    if tenant.as_ref() != Some(&other) {
        let moved = Claims { tenant: Some(&other), ..claims };
        assert!(keyring.verify_at(&genuine, &moved, NOW).is_err());
    }
    if job_id != Some("fuzz-other-job") {
        let moved = Claims { job_id: Some("fuzz-other-job"), ..claims };
        assert!(keyring.verify_at(&genuine, &moved, NOW).is_err());
    }
    let stranger = Keyring::new("k1", &[8u8; 32]).expect("a valid key");
    assert!(stranger.verify_at(&genuine, &claims, NOW).is_err());

    // Any issue time: signed then verified at that time, it holds; far
    // later than the maximum age, it does not.
    let at = keyring.sign_at(&claims, issued_at);
    assert_eq!(keyring.verify_at(&at, &claims, issued_at), Ok(()));
    if let Some(later) = issued_at.checked_add(keyring.max_age().as_secs() + 3600) {
        assert!(keyring.verify_at(&at, &claims, later).is_err());
    }
});
