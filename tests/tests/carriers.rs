//! Carriers across process boundaries, as data: nestjs-context compatibility,
//! versions, and typed errors for identities that cannot be trusted.

use context_runtime::{
    Carrier, CarrierError, Context, ContextSource, InvalidTenantId, TenantId, UserId, UserRef,
};

const NESTJS: &str = r#"{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","tenantId":"t1","userRef":{"type":"user","id":42}}"#;

#[test]
fn a_nestjs_context_carrier_is_read_as_it_is() {
    let carrier: Carrier = serde_json::from_str(NESTJS).expect("parse");
    assert_eq!(carrier.version(), 1);
    let cx = Context::from_carrier(&carrier).expect("valid");
    assert_eq!(
        cx.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(cx.tenant().expect("tenant").as_str(), "t1");
    let user = cx.user().expect("user");
    assert_eq!(user.kind(), "user");
    assert_eq!(user.id(), &UserId::Number(42));
}

#[test]
fn a_string_user_id_and_a_nested_job_payload_are_read() {
    #[derive(serde::Deserialize)]
    struct Data {
        #[serde(rename = "__ctx")]
        ctx: Carrier,
    }
    #[derive(serde::Deserialize)]
    struct Job {
        data: Data,
    }
    let job: Job = serde_json::from_str(
        r#"{"data":{"__ctx":{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","userRef":{"type":"service","id":"billing"}}}}"#,
    )
    .expect("parse");
    let cx = job.data.ctx.to_context().expect("valid");
    assert_eq!(cx.user().expect("user").to_string(), "service:billing");
    assert!(cx.tenant().is_none());
}

#[test]
fn what_we_write_reads_back_in_the_nestjs_shape() {
    let cx = Context::builder()
        .tenant(TenantId::new("t1").expect("valid"))
        .user(UserRef::user(42).expect("valid"))
        .build();
    let json: serde_json::Value = serde_json::to_value(cx.to_carrier()).expect("serialize");
    assert_eq!(json["traceId"], cx.trace_id().to_string());
    assert_eq!(json["tenantId"], "t1");
    assert_eq!(
        json["userRef"],
        serde_json::json!({"type": "user", "id": 42})
    );
    assert_eq!(json["v"], 1);
    // And nothing process-local leaks into it.
    let with_value = cx.with_value(7u32).with_source("http");
    let json = with_value.to_carrier().to_json();
    assert!(!json.contains("http"), "{json}");
}

#[test]
fn invalid_identities_are_typed_errors_never_a_missing_tenant() {
    let cases = [
        (r#"{"tenantId":""}"#, "tenant"),
        (r#"{"tenantId":"t 1"}"#, "tenant"),
        (r#"{"tenantId":"a=b"}"#, "tenant"),
        (r#"{"tenantId":{"id":1}}"#, "tenant"),
        (r#"{"userRef":{"type":"user"}}"#, "user"),
        (r#"{"userRef":{"type":"","id":1}}"#, "user"),
        (r#"{"userRef":"user:42"}"#, "user"),
        (r#"{"baggage":[1]}"#, "baggage"),
    ];
    for (json, what) in cases {
        let carrier = Carrier::from_json(json).expect(json);
        let err = Context::from_carrier(&carrier).expect_err(json);
        let ok = matches!(
            (&err, what),
            (CarrierError::InvalidTenant { .. }, "tenant")
                | (CarrierError::InvalidUser { .. }, "user")
                | (CarrierError::InvalidBaggage { .. }, "baggage")
        );
        assert!(ok, "{json}: {err:?}");
        assert!(!err.to_string().is_empty());
    }
    let err = Context::from_carrier(&Carrier::from_json(r#"{"tenantId":"x;y"}"#).expect("parse"))
        .expect_err("invalid");
    assert_eq!(err.tenant(), Some("x;y"));
    assert!(matches!(
        err,
        CarrierError::InvalidTenant {
            error: InvalidTenantId::InvalidChar { ch: ';', .. },
            ..
        }
    ));
}

#[test]
fn broken_carriers_do_not_parse_and_say_why() {
    for json in ["", "null", "[]", "\"t1\"", "{", r#"{"v":"one"}"#] {
        let err = Carrier::from_json(json).expect_err(json);
        assert!(matches!(err, CarrierError::Malformed { .. }), "{json}");
        assert!(err.to_string().contains("malformed"), "{err}");
    }
}

#[test]
fn older_and_newer_versions_are_tolerated() {
    let v0 = Carrier::from_json(r#"{"v":0,"tenantId":"t1"}"#).expect("parse");
    let v9 =
        Carrier::from_json(r#"{"v":9,"tenantId":"t1","spans":[1,2],"extra":"x"}"#).expect("parse");
    for c in [v0, v9] {
        assert_eq!(
            Context::from_carrier(&c)
                .expect("valid")
                .tenant()
                .expect("t")
                .as_str(),
            "t1"
        );
    }
}

#[test]
fn no_carrier_at_all_is_a_fresh_context_without_a_tenant() {
    let none: Option<Carrier> = None;
    let a = none.to_context().expect("fresh");
    let b = none.to_context().expect("fresh");
    assert_ne!(a.trace_id(), b.trace_id());
    assert!(a.tenant().is_none());
}
