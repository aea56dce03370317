//! ward-reconciler: the GitOps side of ward and the `ward` command.
//!
//! Data moves one way: [`source`] (files of a revision) → [`desired`] (validated
//! resources) → [`plan`] (diff against a [`target`]'s live state) → apply → [`report`].
//! [`sync`] is that pipeline, the one path both the CLI ([`cli`]) and the controller
//! ([`controller`]) take.
//! [`testing`] runs the policy engine over validated resources: PolicyTests (`ward test`),
//! `ward explain`, and the connectivity diff that `diff` and `plan` report.

pub mod cli;
pub mod controller;
pub mod desired;
pub mod live;
pub mod normalize;
pub mod paint;
pub mod plan;
pub mod planfile;
pub mod report;
pub mod source;
pub mod sync;
pub mod target;
pub mod testing;
pub mod time;
