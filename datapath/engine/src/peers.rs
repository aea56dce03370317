//! The peers of one entry (reference §2 IngressCommonRule/EgressCommonRule, §4.2, §4.3).

use super::cidr::{CidrPeer, Prefix};
use super::compile::{PeerMatch, RuleCompiler};
use super::fqdn;
use super::identity::{EntityPeers, entity};
use super::rule::RuleRef;
use super::scope::Scope;
use super::selector::Selector;
use ward_schema::model;

impl RuleCompiler<'_, '_> {
    pub(crate) fn ingress_peers(
        &mut self,
        at: &RuleRef,
        c: &model::IngressCommon,
        has_l4: bool,
        scope: &Scope<'_>,
    ) -> Vec<PeerMatch> {
        let any_field = c.from_endpoints.is_some()
            || c.from_cidr.is_some()
            || c.from_cidr_set.is_some()
            || c.from_entities.is_some()
            || c.from_groups.is_some()
            || c.from_nodes.is_some();
        let mut peers = Self::common_peers(any_field, has_l4);
        for s in c.from_endpoints.iter().flatten() {
            peers.push(self.endpoints(scope.peer(s)));
        }
        for s in c.from_nodes.iter().flatten() {
            peers.push(self.selector(scope.node_peer(s)));
        }
        self.cidrs(
            at,
            &mut peers,
            c.from_cidr.as_deref(),
            c.from_cidr_set.as_deref(),
        );
        self.entities(at, &mut peers, c.from_entities.as_deref());
        if c.from_groups.as_ref().is_some_and(|g| !g.is_empty()) {
            self.unresolved(at, "fromGroups needs a cloud provider: it matches no peer");
        }
        peers
    }

    pub(crate) fn egress_peers(
        &mut self,
        at: &RuleRef,
        c: &model::EgressCommon,
        has_l4: bool,
        fqdns: bool,
        scope: &Scope<'_>,
    ) -> Vec<PeerMatch> {
        let any_field = c.to_endpoints.is_some()
            || c.to_cidr.is_some()
            || c.to_cidr_set.is_some()
            || c.to_entities.is_some()
            || c.to_services.is_some()
            || c.to_groups.is_some()
            || c.to_nodes.is_some()
            || fqdns;
        let mut peers = Self::common_peers(any_field, has_l4);
        for s in c.to_endpoints.iter().flatten() {
            peers.push(self.endpoints(scope.peer(s)));
        }
        for s in c.to_nodes.iter().flatten() {
            peers.push(self.selector(scope.node_peer(s)));
        }
        self.cidrs(
            at,
            &mut peers,
            c.to_cidr.as_deref(),
            c.to_cidr_set.as_deref(),
        );
        self.entities(at, &mut peers, c.to_entities.as_deref());
        self.service_peers(at, &mut peers, c.to_services.as_deref(), scope);
        if c.to_groups.as_ref().is_some_and(|g| !g.is_empty()) {
            self.unresolved(
                at,
                "toGroups needs a cloud provider: it matches no destination",
            );
        }
        peers
    }

    /// `toFQDNs`: every address of a declared DNS answer whose name a selector matches, as a
    /// host prefix. Without such an answer the rule matches nothing, which is said (unresolved).
    pub(crate) fn fqdn_peers(
        &mut self,
        at: &RuleRef,
        selectors: Option<&[model::FqdnSelector]>,
    ) -> Vec<PeerMatch> {
        let Some(selectors) = selectors.filter(|s| !s.is_empty()) else {
            return Vec::new();
        };
        let mut peers = Vec::new();
        for answer in self.ctx.dns {
            if !selectors.iter().any(|s| fqdn::matches(s, &answer.name)) {
                continue;
            }
            peers.extend(answer.addresses.iter().filter_map(|ip| host_peer(*ip)));
        }
        if peers.is_empty() {
            let names: Vec<&str> = selectors
                .iter()
                .filter_map(|s| s.match_name.as_deref().or(s.match_pattern.as_deref()))
                .collect();
            self.unresolved(
                at,
                format!(
                    "toFQDNs ({}) has no DNS answer here (declare them under a PolicyTest's spec.dns): it matches no destination",
                    names.join(", ")
                ),
            );
        }
        peers
    }

    /// `toServices` as Cilium translates it (see [`crate::service`]): a service without a
    /// selector is its backends' addresses, one with a selector the pods it selects. An
    /// entry that selects no service here matches nothing, which is said (unresolved).
    fn service_peers(
        &mut self,
        at: &RuleRef,
        peers: &mut Vec<PeerMatch>,
        entries: Option<&[model::Service]>,
        scope: &Scope<'_>,
    ) {
        let services = self.ctx.services;
        for entry in entries.unwrap_or_default() {
            let mut found = false;
            for svc in services.iter().filter(|s| s.selected_by(entry)) {
                found = true;
                if svc.has_selector() {
                    peers.push(self.endpoints(scope.peer(&svc.endpoint_selector())));
                    continue;
                }
                peers.extend(svc.backends.iter().filter_map(|ip| host_peer(*ip)));
            }
            if !found {
                let what = match (&entry.k8s_service, &entry.k8s_service_selector) {
                    (Some(r), _) => format!(
                        "k8sService {}/{}",
                        r.namespace
                            .as_deref()
                            .filter(|n| !n.is_empty())
                            .unwrap_or("*"),
                        r.service_name.as_deref().unwrap_or("")
                    ),
                    _ => "k8sServiceSelector".to_owned(),
                };
                self.unresolved(
                    at,
                    format!("toServices ({what}) selects no service here (declare services under a PolicyTest's spec.services or the lab's): it matches no destination"),
                );
            }
        }
    }

    /// The L4-only wildcard: no peer field at all, but ports. Without ports either, the
    /// entry (`{}`) matches no peer.
    fn common_peers(any_field: bool, has_l4: bool) -> Vec<PeerMatch> {
        if any_field || !has_l4 {
            Vec::new()
        } else {
            vec![PeerMatch::Any]
        }
    }

    pub(crate) fn selector(&mut self, sel: Selector) -> PeerMatch {
        if sel.is_wildcard() {
            return PeerMatch::Any;
        }
        PeerMatch::Selector(self.ctx.selectors.intern(sel))
    }

    /// An endpoint peer (`fromEndpoints`/`toEndpoints`), which requirements may narrow.
    pub(crate) fn endpoints(&mut self, sel: Selector) -> PeerMatch {
        match self.selector(sel) {
            PeerMatch::Selector(s) => PeerMatch::Endpoints(s),
            other => other,
        }
    }

    fn cidrs(
        &mut self,
        at: &RuleRef,
        peers: &mut Vec<PeerMatch>,
        plain: Option<&[String]>,
        sets: Option<&[model::CidrRule]>,
    ) {
        for c in plain.unwrap_or_default() {
            match Prefix::parse(c) {
                Ok(prefix) => peers.push(PeerMatch::Cidr(CidrPeer {
                    prefix,
                    except: Vec::new(),
                })),
                Err(e) => self.note(at, format!("{e}: this CIDR matches nothing")),
            }
        }
        for set in sets.unwrap_or_default() {
            let except = self.excepts(at, set.except.as_deref());
            if let Some(cidr) = &set.cidr {
                match Prefix::parse(cidr) {
                    Ok(prefix) => peers.push(PeerMatch::Cidr(CidrPeer { prefix, except })),
                    Err(e) => self.note(at, format!("{e}: this CIDR matches nothing")),
                }
            } else {
                self.group_peers(at, peers, set, &except);
            }
        }
    }

    pub(crate) fn excepts(&mut self, at: &RuleRef, except: Option<&[String]>) -> Vec<Prefix> {
        let mut out = Vec::new();
        for e in except.unwrap_or_default() {
            match Prefix::parse(e) {
                Ok(p) => out.push(p),
                Err(err) => self.note(at, format!("{err}: this exception is ignored")),
            }
        }
        out
    }

    /// `cidrGroupRef` / `cidrGroupSelector`: every prefix of the groups named or selected,
    /// each minus the rule's `except` (Cilium adds `cidr:<except> DoesNotExist` to the group
    /// selector). Nothing found is an unresolved note: upstream it silently matches nothing.
    fn group_peers(
        &mut self,
        at: &RuleRef,
        peers: &mut Vec<PeerMatch>,
        set: &model::CidrRule,
        except: &[Prefix],
    ) {
        let groups = self.ctx.groups;
        let found = match (&set.cidr_group_ref, &set.cidr_group_selector) {
            (Some(name), _) => match groups.get(name) {
                Some(g) => vec![g],
                None => {
                    self.unresolved(at, format!("CiliumCIDRGroup \"{name}\" is not in this revision: cidrGroupRef matches nothing"));
                    return;
                }
            },
            (None, Some(sel)) => {
                let found: Vec<_> = groups.select(sel).into_iter().map(|(_, g)| g).collect();
                if found.is_empty() {
                    self.unresolved(at, "cidrGroupSelector selects no CiliumCIDRGroup in this revision: it matches nothing");
                }
                found
            }
            (None, None) => return,
        };
        for g in found {
            for prefix in &g.prefixes {
                peers.push(PeerMatch::Cidr(CidrPeer {
                    prefix: *prefix,
                    except: except.to_vec(),
                }));
            }
        }
    }

    fn entities(&mut self, at: &RuleRef, peers: &mut Vec<PeerMatch>, names: Option<&[String]>) {
        for name in names.unwrap_or_default() {
            match entity(name, self.ctx.cluster) {
                Some(EntityPeers::All) => peers.push(PeerMatch::Any),
                Some(EntityPeers::Selectors(sels)) => {
                    for s in sels {
                        peers.push(self.selector(s));
                    }
                }
                None => self.note(
                    at,
                    format!("unsupported entity: {name}; it matches nothing"),
                ),
            }
        }
    }
}

/// A CIDR peer of one address (a `/32` or `/128`).
fn host_peer(ip: std::net::IpAddr) -> Option<PeerMatch> {
    let len = if ip.is_ipv4() { 32 } else { 128 };
    Prefix::parse(&format!("{ip}/{len}")).ok().map(|prefix| {
        PeerMatch::Cidr(CidrPeer {
            prefix,
            except: Vec::new(),
        })
    })
}
