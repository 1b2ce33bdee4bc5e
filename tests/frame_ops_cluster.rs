//! The frame corpus of `frame_ops.rs`, run on a supervisor and two worker
//! processes (the same tests, against the same one-batch references).

#[path = "frame_ops.rs"]
mod corpus;
