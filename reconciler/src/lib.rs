//! ward-reconciler: the GitOps side of ward and the `ward` command.
//!
//! Data moves one way: [`source`] (files of a revision) → [`desired`] (validated
//! resources) → [`plan`] (diff against a [`target`]'s live state) → apply → [`report`].

pub mod cli;
pub mod desired;
pub mod normalize;
pub mod plan;
pub mod report;
pub mod source;
pub mod target;
