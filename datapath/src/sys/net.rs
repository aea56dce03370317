//! Links, addresses and routes of one network namespace: the [`Net`] trait, and
//! [`NetnsNet`], the kernel's, spoken over rtnetlink from a thread inside the namespace.

use super::netns::run_in_netns;
use anyhow::{Context, Result, anyhow};
use futures::TryStreamExt;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use ward_schema::topology::Ipv4Net;

/// Where a [`Route`] sends its traffic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteTarget {
    /// Out of an interface, on-link (`dev <if>`, scope link).
    Dev(String),
    /// To a gateway through an interface (`via <gw> dev <if>`).
    Via(Ipv4Addr, String),
    /// Nowhere: dropped with ICMP unreachable (`unreachable`).
    Unreachable,
}

/// An IPv4 route of the main table. A route is known by its destination and metric: a route
/// with the same pair replaces it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    /// The destination.
    pub dst: Ipv4Net,
    /// Where it goes.
    pub target: RouteTarget,
    /// Its metric (priority); 0 when not set.
    pub metric: u32,
}

impl fmt::Display for Route {
    /// As `ip route` writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            RouteTarget::Dev(d) => write!(f, "{} dev {d}", self.dst)?,
            RouteTarget::Via(gw, d) => write!(f, "{} via {gw} dev {d}", self.dst)?,
            RouteTarget::Unreachable => write!(f, "unreachable {}", self.dst)?,
        }
        if self.metric != 0 {
            write!(f, " metric {}", self.metric)?;
        }
        Ok(())
    }
}

/// Links, addresses and routes of one network namespace: what the agent and the WireGuard
/// mesh read and change there.
pub trait Net: Send + Sync {
    /// Every IPv4 address with its interface's name, in the kernel's order (by interface).
    fn ipv4_addresses(&self) -> Result<Vec<(String, Ipv4Addr)>>;
    /// The MTU of interface `ifname`.
    fn link_mtu(&self, ifname: &str) -> Result<u32>;
    /// Whether interface `ifname` exists.
    fn link_exists(&self, ifname: &str) -> Result<bool>;
    /// Sets `ifname` up, with `mtu` when given.
    fn set_link_up(&self, ifname: &str, mtu: Option<u32>) -> Result<()>;
    /// Deletes interface `ifname`.
    fn delete_link(&self, ifname: &str) -> Result<()>;
    /// Adds `route`, or replaces the route with its destination and metric.
    fn replace_route(&self, route: &Route) -> Result<()>;
    /// Deletes one route to `dst`: the one of `target`'s kind and `metric` when given, else
    /// the first the kernel finds (of any kind and metric). An error when there is none.
    fn delete_route(&self, dst: Ipv4Net, kind: Option<(&RouteTarget, u32)>) -> Result<()>;
    /// The interface of the route whose destination is exactly `ip/32`, if there is one.
    fn route_interface(&self, ip: Ipv4Addr) -> Result<Option<String>>;
    /// Makes the namespace deliver packets carrying `rule.mark` (under `rule.mask`) to
    /// itself, whatever their destination (`ip rule add fwmark M/K lookup T` and `ip route
    /// replace local default dev lo table T`, for IPv4 and, where the kernel has it, IPv6).
    /// Adds only what is missing.
    fn ensure_local_delivery(&self, rule: &LocalDelivery) -> Result<()>;
}

/// A routing rule that delivers marked packets locally (to a transparent proxy's socket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalDelivery {
    /// The mark's bits.
    pub mark: u32,
    /// The mask they sit under.
    pub mask: u32,
    /// The routing table holding the local default routes.
    pub table: u32,
    /// The rule's priority (before the main table's 32766).
    pub priority: u32,
}

impl fmt::Display for LocalDelivery {
    /// As `ip rule` writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: from all fwmark {:#x}/{:#x} lookup {}",
            self.priority, self.mark, self.mask, self.table
        )
    }
}

/// The kernel's links, addresses and routes in the network namespace at a path. Each call
/// opens a netlink socket from a thread inside the namespace.
#[derive(Debug, Clone)]
pub struct NetnsNet {
    netns: PathBuf,
}

impl NetnsNet {
    /// The namespace at `netns` (`/run/netns/<name>`, `/proc/self/ns/net`).
    pub fn new(netns: &Path) -> NetnsNet {
        NetnsNet {
            netns: netns.to_path_buf(),
        }
    }

    /// Runs `f` with a netlink handle inside the namespace; errors name the namespace.
    fn with<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        T: Send,
        F: FnOnce(Handle) -> Fut + Send,
        Fut: Future<Output = Result<T>>,
    {
        run_in_netns(&self.netns, move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
                .context("cannot start a runtime for netlink")?;
            rt.block_on(async move {
                let (connection, handle, _) =
                    rtnetlink::new_connection().context("cannot open a netlink socket")?;
                let task = tokio::spawn(connection);
                let r = f(handle).await;
                task.abort();
                r
            })
        })
        .with_context(|| format!("{what} (network namespace {})", self.netns.display()))
    }
}

/// The index of `ifname`, or None.
async fn index_of(handle: &Handle, ifname: &str) -> Result<Option<u32>> {
    let mut links = handle.link().get().match_name(ifname.to_owned()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link.map(|l| l.header.index)),
        Err(e) if errno(&e) == Some(nix::libc::ENODEV) => Ok(None),
        Err(e) => Err(anyhow!(e)),
    }
}

async fn require_index(handle: &Handle, ifname: &str) -> Result<u32> {
    index_of(handle, ifname)
        .await?
        .with_context(|| format!("no interface {ifname:?}"))
}

/// Interface index → name.
async fn link_names(handle: &Handle) -> Result<BTreeMap<u32, String>> {
    let mut out = BTreeMap::new();
    let mut links = handle.link().get().execute();
    while let Some(l) = links.try_next().await? {
        if let Some(name) = l.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        }) {
            out.insert(l.header.index, name);
        }
    }
    Ok(out)
}

/// One family's half of [`Net::ensure_local_delivery`].
async fn local_delivery(h: &Handle, rule: &LocalDelivery, lo: u32, v6: bool) -> Result<()> {
    use rtnetlink::IpVersion;
    use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute};
    let version = if v6 { IpVersion::V6 } else { IpVersion::V4 };
    let rules: Vec<_> = h.rule().get(version).execute().try_collect().await?;
    let present = rules.iter().any(|m| {
        let has = |a: RuleAttribute| m.attributes.contains(&a);
        has(RuleAttribute::FwMark(rule.mark))
            && has(RuleAttribute::FwMask(rule.mask))
            && (has(RuleAttribute::Table(rule.table)) || u32::from(m.header.table) == rule.table)
    });
    if !present {
        let add = h
            .rule()
            .add()
            .table_id(rule.table)
            .priority(rule.priority)
            .fw_mark(rule.mark)
            .action(RuleAction::ToTable);
        if v6 {
            let mut add = add.v6();
            add.message_mut()
                .attributes
                .push(RuleAttribute::FwMask(rule.mask));
            add.execute().await?;
        } else {
            let mut add = add.v4();
            add.message_mut()
                .attributes
                .push(RuleAttribute::FwMask(rule.mask));
            add.execute().await?;
        }
    }
    let route = if v6 {
        RouteMessageBuilder::<std::net::Ipv6Addr>::new()
            .destination_prefix(std::net::Ipv6Addr::UNSPECIFIED, 0)
            .output_interface(lo)
            .table_id(rule.table)
            .kind(RouteType::Local)
            .scope(RouteScope::Host)
            .build()
    } else {
        RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(Ipv4Addr::UNSPECIFIED, 0)
            .output_interface(lo)
            .table_id(rule.table)
            .kind(RouteType::Local)
            .scope(RouteScope::Host)
            .build()
    };
    h.route().add(route).replace().execute().await?;
    Ok(())
}

/// The (positive) errno of a netlink error answer.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

/// The message of a route as `ip route replace` sends it: protocol boot; scope link for a
/// route out of an interface without a gateway, universe otherwise.
async fn route_message(handle: &Handle, route: &Route) -> Result<RouteMessage> {
    let b = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(route.dst.network(), route.dst.prefix_len())
        .protocol(RouteProtocol::Boot);
    let b = if route.metric == 0 {
        b
    } else {
        b.priority(route.metric)
    };
    let b = match &route.target {
        RouteTarget::Dev(d) => b
            .output_interface(require_index(handle, d).await?)
            .scope(RouteScope::Link),
        RouteTarget::Via(gw, d) => b
            .gateway(*gw)
            .output_interface(require_index(handle, d).await?),
        RouteTarget::Unreachable => b.kind(RouteType::Unreachable),
    };
    Ok(b.build())
}

impl NetnsNet {
    /// Whether the kernel can make WireGuard interfaces here: adds a throw-away one named
    /// `probe` and deletes it again.
    pub fn can_add_wireguard(&self, probe: &str) -> bool {
        self.with("probing for kernel WireGuard", |h| async move {
            h.link()
                .add(rtnetlink::LinkWireguard::new(probe).build())
                .execute()
                .await?;
            if let Some(i) = index_of(&h, probe).await? {
                h.link().del(i).execute().await?;
            }
            Ok(())
        })
        .is_ok()
    }
}

impl Net for NetnsNet {
    fn ipv4_addresses(&self) -> Result<Vec<(String, Ipv4Addr)>> {
        self.with("cannot list addresses", |h| async move {
            let names = link_names(&h).await?;
            let mut out = Vec::new();
            let mut addrs = h.address().get().execute();
            while let Some(a) = addrs.try_next().await? {
                if a.header.family != AddressFamily::Inet {
                    continue;
                }
                let local = a.attributes.iter().find_map(|x| match x {
                    AddressAttribute::Local(IpAddr::V4(v4)) => Some(*v4),
                    _ => None,
                });
                let address = a.attributes.iter().find_map(|x| match x {
                    AddressAttribute::Address(IpAddr::V4(v4)) => Some(*v4),
                    _ => None,
                });
                if let (Some(ip), Some(name)) = (local.or(address), names.get(&a.header.index)) {
                    out.push((name.clone(), ip));
                }
            }
            Ok(out)
        })
    }

    fn link_mtu(&self, ifname: &str) -> Result<u32> {
        self.with(
            &format!("cannot read the MTU of {ifname}"),
            |h| async move {
                let mut links = h.link().get().match_name(ifname.to_owned()).execute();
                let link = links
                    .try_next()
                    .await?
                    .with_context(|| format!("no interface {ifname:?}"))?;
                link.attributes
                    .iter()
                    .find_map(|a| match a {
                        LinkAttribute::Mtu(m) => Some(*m),
                        _ => None,
                    })
                    .with_context(|| format!("interface {ifname:?} reports no MTU"))
            },
        )
    }

    fn link_exists(&self, ifname: &str) -> Result<bool> {
        self.with(&format!("cannot look up {ifname}"), |h| async move {
            Ok(index_of(&h, ifname).await?.is_some())
        })
    }

    fn set_link_up(&self, ifname: &str, mtu: Option<u32>) -> Result<()> {
        self.with(&format!("cannot set {ifname} up"), |h| async move {
            let index = require_index(&h, ifname).await?;
            let mut b = LinkUnspec::new_with_index(index).up();
            if let Some(mtu) = mtu {
                b = b.mtu(mtu);
            }
            h.link().set(b.build()).execute().await?;
            Ok(())
        })
    }

    fn delete_link(&self, ifname: &str) -> Result<()> {
        self.with(&format!("cannot delete {ifname}"), |h| async move {
            let index = require_index(&h, ifname).await?;
            h.link().del(index).execute().await?;
            Ok(())
        })
    }

    fn replace_route(&self, route: &Route) -> Result<()> {
        self.with(&format!("cannot set route {route}"), |h| async move {
            let m = route_message(&h, route).await?;
            h.route().add(m).replace().execute().await?;
            Ok(())
        })
    }

    fn delete_route(&self, dst: Ipv4Net, kind: Option<(&RouteTarget, u32)>) -> Result<()> {
        let shown = match kind {
            Some((t, metric)) => Route {
                dst,
                target: t.clone(),
                metric,
            }
            .to_string(),
            None => dst.to_string(),
        };
        self.with(&format!("cannot delete route {shown}"), |h| async move {
            // As `ip route del` asks: no protocol, scope "nowhere" (any), the type only when
            // given, so the kernel deletes the first route that matches what is set.
            let mut m = match kind {
                Some((target, metric)) => {
                    route_message(
                        &h,
                        &Route {
                            dst,
                            target: target.clone(),
                            metric,
                        },
                    )
                    .await?
                }
                None => {
                    let mut m = RouteMessageBuilder::<Ipv4Addr>::new()
                        .destination_prefix(dst.network(), dst.prefix_len())
                        .build();
                    m.header.kind = RouteType::Unspec;
                    m
                }
            };
            m.header.protocol = RouteProtocol::Unspec;
            m.header.scope = RouteScope::NoWhere;
            h.route().del(m).execute().await?;
            Ok(())
        })
    }

    fn ensure_local_delivery(&self, rule: &LocalDelivery) -> Result<()> {
        let rule = *rule;
        self.with(
            &format!("cannot add the rule {rule}"),
            move |h| async move {
                let lo = require_index(&h, "lo").await?;
                for v6 in [false, true] {
                    let added = local_delivery(&h, &rule, lo, v6).await;
                    match added {
                        // A kernel without IPv6 (or with it disabled) has no IPv6 rules.
                        Err(e) if v6 => {
                            tracing::debug!("no IPv6 local delivery for the DNS proxy: {e:#}")
                        }
                        other => other?,
                    }
                }
                Ok(())
            },
        )
    }

    fn route_interface(&self, ip: Ipv4Addr) -> Result<Option<String>> {
        self.with(
            &format!("cannot look up the route to {ip}"),
            |h| async move {
                let mut routes = h
                    .route()
                    .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
                    .execute();
                let mut oif = None;
                while let Some(r) = routes.try_next().await? {
                    let table = r
                        .attributes
                        .iter()
                        .find_map(|a| match a {
                            RouteAttribute::Table(t) => Some(*t),
                            _ => None,
                        })
                        .unwrap_or(u32::from(r.header.table));
                    let exact = r.header.destination_prefix_length == 32
                    && r.attributes.iter().any(|a| {
                        matches!(a, RouteAttribute::Destination(RouteAddress::Inet(d)) if *d == ip)
                    });
                    if table != u32::from(RouteHeader::RT_TABLE_MAIN) || !exact {
                        continue;
                    }
                    oif = r.attributes.iter().find_map(|a| match a {
                        RouteAttribute::Oif(i) => Some(*i),
                        _ => None,
                    });
                    if oif.is_some() {
                        break;
                    }
                }
                let Some(oif) = oif else { return Ok(None) };
                Ok(link_names(&h).await?.remove(&oif))
            },
        )
    }
}
