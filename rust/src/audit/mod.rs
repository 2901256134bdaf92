//! The tamper-evident audit chain: canonical records, SHA-256 links, sealed checkpoints and the
//! verifier. The specification is `docs/audit-chain.md`.

pub mod canonical;
pub mod chain;
pub mod config;
pub mod seal;
pub mod verify;

#[cfg(test)]
mod tests;

pub use canonical::GENESIS;
pub use chain::AuditChain;
pub use config::{AuditConfig, AuditRule};
pub use seal::{seal, Checkpoint};
pub use verify::{ChainReport, Failure, FailureKind, Verifier};
