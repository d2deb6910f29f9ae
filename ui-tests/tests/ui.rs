//! Compile-pass scenarios (each runs and asserts) and compile-fail scenarios
//! with their reviewed diagnostics.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/pass/*.rs");
    t.compile_fail("ui/fail/*.rs");
}
