//! The numeric corpus of `ops.rs`, run on a supervisor and two worker
//! processes (the same tests, checked against the same ndarray references).

#[path = "ops.rs"]
mod corpus;
