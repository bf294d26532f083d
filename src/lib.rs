//! twoplace: the exchange between the origin and destination offices of
//! two-place co-management (两地协管).
//!
//! One direction of flow: [`proto`] (the wire contract) → [`api`] (tonic
//! handlers: decode, authorize, map errors) → [`domain`] (pure rules) →
//! [`store`] (SQLite and PostgreSQL).

pub mod api;
pub mod clock;
pub mod dashboard;
pub mod domain;
pub mod json;
pub mod metrics;
pub mod pki;
pub mod server;
pub mod store;

/// The generated wire contract (`proto/twoplace/v1`).
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("twoplace.v1");

    /// The encoded descriptor set, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/twoplace_descriptor.bin"));
}

/// Property tests keep the seeds of past failures beside the source they
/// test (`reconcile.proptest-regressions`), replayed before new cases.
#[cfg(test)]
pub(crate) fn proptest_config() -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..proptest::test_runner::Config::default()
    }
}
