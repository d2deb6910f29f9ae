//! Compile-pass and compile-fail tests of the macros live in `ui/`, run by `tests/ui.rs`.
