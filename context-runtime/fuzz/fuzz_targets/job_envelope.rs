//! The job envelope: any payload is either unreadable or admitted/rejected
//! with a typed outcome, never a panic; an admitted job names its tenant
//! only if the carrier did.
#![no_main]

use context_runtime::jobs::{self, Job, Policy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(job) = serde_json::from_slice::<Job<serde_json::Value>>(data) else {
        return;
    };
    for policy in [Policy::new(), Policy::new().tenant_optional()] {
        match jobs::admit(&job, &policy) {
            Ok(cx) => {
                if policy.requires_tenant() {
                    assert!(cx.tenant().is_some());
                }
                let carrier = job
                    .carrier()
                    .expect("an admitted job has a readable carrier");
                assert_eq!(
                    cx.tenant().map(|t| t.as_str().to_owned()),
                    carrier.and_then(|c| c.tenant_id().map(str::to_owned)),
                );
            }
            Err(rejection) => {
                let _ = rejection.kind();
                let _ = rejection.to_string();
            }
        }
    }
});
