//! Behaviour tests for `context-runtime` live in `tests/`.
