//! Policy tests, `ward explain` and the connectivity diff: the engine
//! ([`ward_engine`]) run over the endpoints that the repository's PolicyTest
//! documents declare.
//!
//! - [`cluster`]: every test's endpoints as one engine cluster (a name is the same endpoint in
//!   every test; conflicting declarations are an error naming both files).
//! - [`peer`]: flow ends as tests write them (endpoint names, entities, addresses).
//! - [`run`]: expectations through [`PolicyRepository::verdict`](ward_engine::PolicyRepository::verdict).
//! - [`explain`]: one flow's verdict with the chain of reasons per direction.
//! - [`connectivity`]: what becomes newly allowed or denied between two revisions.
//! - [`render`]: text and JUnit output of test runs and explanations.
//! - `datapath` (with the `node` feature): the expectations as real packets through ward's
//!   eBPF programs in a lab built from the same endpoints (`ward test --datapath`).
//!
//! Everything here but `datapath` is pure: resource sets in, results out.

pub mod cluster;
pub mod connectivity;
#[cfg(feature = "node")]
pub mod datapath;
pub mod explain;
pub mod outcome;
pub mod peer;
pub mod render;
pub mod run;

pub use cluster::{OnConflict, TestCluster};
pub use connectivity::Connectivity;
pub use run::{Status, TestRun};
pub use ward_schema::policytest::PolicyTest;

use ward_schema::diagnostic::codes;
use ward_schema::{Diagnostic, ResourceSet};

/// The PolicyTests of a revision and the cluster their endpoints make.
#[derive(Debug, Clone)]
pub struct Suite {
    /// The tests, in file order.
    pub tests: Vec<PolicyTest>,
    /// Their endpoints.
    pub cluster: TestCluster,
}

impl Suite {
    /// The suite of `set`; every problem (a document that does not convert, conflicting
    /// declarations, an address used twice) as a diagnostic.
    pub fn of(set: &ResourceSet) -> Result<Suite, Vec<Diagnostic>> {
        let (tests, errors) = PolicyTest::all_in(set);
        let mut problems: Vec<Diagnostic> = errors
            .into_iter()
            .map(|e| Diagnostic::error(codes::POLICY_TEST, e))
            .collect();
        let cluster = match TestCluster::build(&tests) {
            Ok(c) => c,
            Err(d) => {
                problems.extend(d);
                TestCluster::default()
            }
        };
        if problems.is_empty() {
            Ok(Suite { tests, cluster })
        } else {
            Err(problems)
        }
    }
}
