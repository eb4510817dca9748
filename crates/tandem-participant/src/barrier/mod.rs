//! The sub-transaction barrier (see the crate docs).
