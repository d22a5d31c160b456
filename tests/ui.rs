//! Misuse of the attribute macros fails to compile with a message that points
//! at the offending item and says what to do instead.

#[test]
fn remote_misuse_is_a_readable_compile_error() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/remote/*.rs");
}

#[test]
fn actor_misuse_is_a_readable_compile_error() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/actor/*.rs");
}
