//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several controllers
//! against one cluster only one writes.
//!
//! The Lease `ward-<sync>` (in `--lease-namespace`) names its holder and when it last renewed.
//! A controller holds it when it created it, renewed it, or took it over after the holder let
//! it lapse for [`DURATION`]. Every change is a replace carrying the `resourceVersion` read
//! just before, so of two controllers racing for a lapsed Lease the API server lets exactly
//! one win (the other gets 409 Conflict and stays a follower). The holder renews every
//! [`RENEW`], also while a reconcile runs ([`Lease::hold_during`]: the first apply of thousands
//! of objects takes longer than [`DURATION`]), and gives the Lease up on shutdown so a follower
//! takes over at once.
//!
//! Expiry is judged by the annotation `ward.dev/renewed-unix-ms` that every ward controller
//! writes with `spec.renewTime` (which stays for kubectl and other tools), so no date parsing
//! is needed; clocks of the controllers' machines are assumed to agree within seconds, as for
//! any Lease-based election.

use crate::target::kube::Cluster;
use anyhow::{Result, anyhow};
use k8s_openapi::api::coordination::v1::Lease as KLease;
use kube::api::{Api, ObjectMeta, PostParams};
use std::sync::{Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant, SystemTime};
use tokio::runtime::Handle;

/// How long a Lease is valid after its last renewal.
pub const DURATION: Duration = Duration::from_secs(15);
/// How often the holder renews.
pub const RENEW: Duration = Duration::from_secs(3);
/// How often a follower tries again.
pub const RETRY: Duration = Duration::from_secs(2);
const RENEWED: &str = "ward.dev/renewed-unix-ms";

/// This controller's view of the Lease.
pub struct Lease {
    api: Api<KLease>,
    rt: Handle,
    namespace: String,
    name: String,
    identity: String,
    /// When this controller last renewed it, if it holds it.
    held_since_renewal: Option<Instant>,
}

impl Lease {
    /// The Lease for WardSync `sync` in `cluster`, as `identity`.
    pub fn new(cluster: &Cluster, namespace: &str, sync: &str, identity: &str) -> Lease {
        Lease {
            api: Api::namespaced(cluster.client().clone(), namespace),
            rt: cluster.handle(),
            namespace: namespace.into(),
            name: format!("ward-{sync}"),
            identity: identity.into(),
            held_since_renewal: None,
        }
    }

    /// Runs `work` (a reconcile) while a helper thread keeps renewing the Lease every
    /// [`RENEW`], so a long reconcile does not let it lapse and a follower take over mid-way.
    pub fn hold_during<R>(&mut self, work: impl FnOnce() -> R) -> R {
        let (done, wait) = mpsc::channel::<()>();
        let me = Mutex::new(self);
        std::thread::scope(|s| {
            let me = &me;
            s.spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(RENEW) {
                    let mut lease = me.lock().unwrap_or_else(PoisonError::into_inner);
                    match lease.try_hold() {
                        Ok(true) => tracing::debug!(lease = %lease.name, "renewed during the reconcile"),
                        Ok(false) => {
                            tracing::error!(lease = %lease.name, "lost the lease during a reconcile: another controller may be writing too")
                        }
                        Err(e) => tracing::warn!("cannot renew the lease during the reconcile: {e:#}"),
                    }
                }
            });
            let result = work();
            drop(done);
            result
        })
    }

    /// Whether this controller holds the Lease (and renewed it within its duration).
    pub fn held(&self) -> bool {
        self.held_since_renewal
            .is_some_and(|t| t.elapsed() < DURATION)
    }

    /// Acquires, renews or takes over the Lease; `Ok(true)` when this controller holds it.
    pub fn try_hold(&mut self) -> Result<bool> {
        let api = self.api.clone();
        let now_ms = unix_ms(SystemTime::now());
        let result = self.rt.block_on(async {
            match api.get_opt(&self.name).await? {
                None => {
                    let lease = self.lease(
                        ObjectMeta {
                            name: Some(self.name.clone()),
                            ..ObjectMeta::default()
                        },
                        now_ms,
                        0,
                    );
                    api.create(&PostParams::default(), &lease)
                        .await
                        .map(|_| true)
                }
                Some(current) => {
                    let spec = current.spec.clone().unwrap_or_default();
                    let holder = spec.holder_identity.clone().unwrap_or_default();
                    let renewed: u64 = current
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(RENEWED))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    let lapsed = now_ms.saturating_sub(renewed) > DURATION.as_millis() as u64;
                    if holder != self.identity && !holder.is_empty() && !lapsed {
                        return Ok(false);
                    }
                    let transitions =
                        spec.lease_transitions.unwrap_or(0) + i32::from(holder != self.identity);
                    let lease = self.lease(current.metadata.clone(), now_ms, transitions);
                    api.replace(&self.name, &PostParams::default(), &lease)
                        .await
                        .map(|_| true)
                }
            }
        });
        match result {
            Ok(true) => {
                if self.held_since_renewal.is_none() {
                    tracing::info!(lease = %self.name, identity = %self.identity, "became the leader");
                }
                self.held_since_renewal = Some(Instant::now());
                Ok(true)
            }
            Ok(false) => {
                self.lost();
                Ok(false)
            }
            // Another controller changed it between our read and write: it won.
            Err(kube::Error::Api(s)) if s.code == 409 => {
                self.lost();
                Ok(false)
            }
            Err(e) => {
                // Unreachable API server: stop writing once the Lease may have lapsed.
                if !self.held() {
                    self.lost();
                }
                Err(anyhow!("lease {}/{}: {e}", self.namespace, self.name))
            }
        }
    }

    /// Gives the Lease up (on shutdown), so a follower need not wait for it to lapse.
    pub fn release(&mut self) {
        if self.held_since_renewal.take().is_none() {
            return;
        }
        let api = self.api.clone();
        let r = self.rt.block_on(async {
            let Some(current) = api.get_opt(&self.name).await? else {
                return Ok(());
            };
            if current
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.as_deref())
                != Some(self.identity.as_str())
            {
                return Ok(());
            }
            let mut lease = self.lease(
                current.metadata.clone(),
                0,
                current
                    .spec
                    .as_ref()
                    .and_then(|s| s.lease_transitions)
                    .unwrap_or(0),
            );
            if let Some(spec) = lease.spec.as_mut() {
                spec.holder_identity = None;
            }
            api.replace(&self.name, &PostParams::default(), &lease)
                .await
                .map(|_| ())
        });
        match r {
            Ok(()) => tracing::info!(lease = %self.name, "released the lease"),
            Err(e) => tracing::warn!(lease = %self.name, "cannot release the lease: {e}"),
        }
    }

    fn lost(&mut self) {
        if self.held_since_renewal.take().is_some() {
            tracing::warn!(lease = %self.name, "lost the lease; not writing until it is held again");
        }
    }

    fn lease(&self, mut meta: ObjectMeta, now_ms: u64, transitions: i32) -> KLease {
        meta.annotations
            .get_or_insert_with(Default::default)
            .insert(RENEWED.into(), now_ms.to_string());
        let micro = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
            k8s_openapi::jiff::Timestamp::now(),
        );
        KLease {
            metadata: meta,
            spec: Some(k8s_openapi::api::coordination::v1::LeaseSpec {
                holder_identity: Some(self.identity.clone()),
                lease_duration_seconds: Some(DURATION.as_secs() as i32),
                renew_time: Some(micro.clone()),
                acquire_time: Some(micro),
                lease_transitions: Some(transitions),
                ..Default::default()
            }),
        }
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
