//! Loading the programs with the node's pinned maps, and attaching them to pod veths.

use std::fs;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use aya::programs::tc::{NlOptions, SchedClassifierLink, TcAttachOptions, qdisc_add_clsact};
use aya::programs::{Link as _, ProgramError, SchedClassifier, TcAttachType, TcError};
use aya::{Ebpf, EbpfLoader};
use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow};

use super::node_maps::{NodeMaps, check_pinned_layouts, os_error};
use super::{PIN_ROOT, pin_dir};
use crate::sys::netns;
use crate::sys::{HostMounts, Mounts};

/// The compiled object (`datapath/bpf/ward.c`, built by build.rs).
fn object() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ward.bpf.o"))
}

/// Program run on TC ingress of the host veth: the pod's egress.
pub const FROM_POD_PROGRAM: &str = "from_pod";
/// Program run on TC egress of the host veth: the pod's ingress.
pub const TO_POD_PROGRAM: &str = "to_pod";
/// Program run on TC ingress of the node's underlay interface: the host's ingress (packets
/// to one of the node's own addresses; forwarded traffic passes).
pub const TO_HOST_PROGRAM: &str = "to_host";
/// Program run on TC egress of the node's underlay interface: the host's egress.
pub const FROM_HOST_PROGRAM: &str = "from_host";

/// Priority of ward's TC filters: 1, the first to run, so no other direct-action filter on
/// the same hook can pass a packet before ward sees it.
pub const TC_PRIORITY: u16 = 1;
/// Handle of ward's TC filters (one per hook, at [`TC_PRIORITY`]).
pub const TC_HANDLE: u32 = 1;

/// One node's enforcement datapath: the loaded programs and typed handles on the node's
/// maps, pinned under `<PIN_ROOT>/<node>/`.
///
/// The maps are the pinned ones: opening again (agent restart, even after SIGKILL) reuses
/// them with their contents, so enforcement state survives the process. Dropping a
/// `NodeDatapath` detaches nothing: filters attached by [`NodeDatapath::attach`] keep
/// running the programs they were given, against the pinned maps.
///
/// Map operations ([`NodeMaps`]) are available directly through `Deref`.
pub struct NodeDatapath {
    node: String,
    pin_dir: PathBuf,
    ebpf: Ebpf,
    maps: NodeMaps,
}

impl std::fmt::Debug for NodeDatapath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeDatapath")
            .field("node", &self.node)
            .field("pin_dir", &self.pin_dir)
            .finish_non_exhaustive()
    }
}

impl NodeDatapath {
    /// Loads the programs for `node`, creating its maps pinned by name under
    /// `<PIN_ROOT>/<node>/` or reusing the ones already pinned there.
    ///
    /// Errors: not privileged (root, or CAP_BPF + CAP_NET_ADMIN, is needed), bpffs not
    /// mounted, pins from an incompatible build, or a program the verifier rejects (the
    /// verifier log is part of the error).
    pub fn open(node: &str) -> Result<NodeDatapath> {
        let dir = pin_dir(node)?;
        if object().is_empty() {
            bail!(
                "this build has no BPF programs: clang was missing when it was built; \
                 apt-get install clang libbpf-dev, then rebuild"
            );
        }
        check_privileges()?;
        check_bpffs()?;
        fs::create_dir_all(&dir)
            .with_context(|| format!("creating the pin directory {}", dir.display()))?;
        check_pinned_layouts(&dir)?;

        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(&dir)
            .load(object())
            .map_err(|e| privilege_hint(anyhow::Error::new(e)))
            .with_context(|| {
                format!(
                    "loading ward's BPF object with maps pinned under {}",
                    dir.display()
                )
            })?;
        for name in [
            FROM_POD_PROGRAM,
            TO_POD_PROGRAM,
            TO_HOST_PROGRAM,
            FROM_HOST_PROGRAM,
        ] {
            let prog = classifier(&mut ebpf, name)?;
            // ProgramError::LoadError's message carries the verifier log.
            load_classifier(prog)
                .map_err(|e| privilege_hint(anyhow::Error::new(e)))
                .with_context(|| format!("loading the BPF program {name}"))?;
        }
        let maps = NodeMaps::from_maps(|name| ebpf.take_map(name))?;
        Ok(NodeDatapath {
            node: node.to_owned(),
            pin_dir: dir,
            ebpf,
            maps,
        })
    }

    /// The node name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Where the node's maps are pinned.
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// The node's maps.
    pub fn maps(&self) -> &NodeMaps {
        &self.maps
    }

    /// The node's maps, for updates.
    pub fn maps_mut(&mut self) -> &mut NodeMaps {
        &mut self.maps
    }

    /// Attaches the programs to the host-side veth `ifname` in the network namespace at
    /// `netns` (e.g. `/run/netns/<node>`): a `clsact` qdisc (added when missing),
    /// [`FROM_POD_PROGRAM`] on its ingress hook and [`TO_POD_PROGRAM`] on its egress hook,
    /// each as the filter at priority [`TC_PRIORITY`], handle [`TC_HANDLE`]. Returns the
    /// interface index (read inside `netns`), the key of the endpoint map.
    ///
    /// Persistence: these are legacy netlink TC filters. The kernel keeps them, with a
    /// reference on the program, after this process exits; aya would delete them when the
    /// program is dropped, so the links are taken out of aya and forgotten on purpose.
    ///
    /// Re-attaching (after a restart, with a freshly loaded program) replaces the program
    /// inside the existing filter in one netlink request; the interface is never without a
    /// filter and there is never more than one ward filter per hook.
    ///
    /// Fail closed: until [`NodeMaps::set_endpoint`] is called for the returned index, the
    /// programs drop every IPv4 packet on this interface; and an endpoint without policy
    /// entries in a direction drops that direction.
    ///
    /// Only a dedicated thread enters `netns`; the calling thread keeps its namespace.
    pub fn attach(&mut self, netns: &Path, ifname: &str) -> Result<u32> {
        self.attach_pair(netns, ifname, [FROM_POD_PROGRAM, TO_POD_PROGRAM])
    }

    /// Attaches the host programs to the node's underlay interface `ifname` in `netns`:
    /// [`TO_HOST_PROGRAM`] on its ingress hook, [`FROM_HOST_PROGRAM`] on its egress hook,
    /// as [`NodeDatapath::attach`] does for a pod. They enforce the host endpoint (the
    /// endpoint-map entry of the returned index) on packets from or to the node's own
    /// addresses, and pass forwarded traffic and the mesh's WireGuard port untouched.
    pub fn attach_host(&mut self, netns: &Path, ifname: &str) -> Result<u32> {
        self.attach_pair(netns, ifname, [TO_HOST_PROGRAM, FROM_HOST_PROGRAM])
    }

    /// Attaches `ingress` and `egress` (program names) to `ifname`'s TC hooks in `netns`.
    fn attach_pair(
        &mut self,
        netns: &Path,
        ifname: &str,
        [ingress, egress]: [&str; 2],
    ) -> Result<u32> {
        let ebpf = &mut self.ebpf;
        netns::run_in_netns(netns, move || {
            let ifindex = netns::ifindex(ifname)?;
            match qdisc_add_clsact(ifname) {
                Ok(()) => {}
                Err(TcError::AlreadyAttached) => {}
                Err(TcError::NetlinkError(e)) if e.raw_os_error() == Some(Errno::EEXIST as i32) => {
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("adding a clsact qdisc to {ifname}"));
                }
            }
            attach_one(ebpf, ingress, ifname, TcAttachType::Ingress)?;
            attach_one(ebpf, egress, ifname, TcAttachType::Egress)?;
            Ok(ifindex)
        })
        .with_context(|| {
            format!(
                "attaching ward to {ifname} in network namespace {}",
                netns.display()
            )
        })
    }

    /// Removes ward's filters from `ifname` in `netns` (what [`NodeDatapath::attach`]
    /// added, the qdisc excepted). Its traffic is then no longer enforced: only for
    /// tearing an endpoint down. Missing filters are not an error.
    pub fn detach(netns: &Path, ifname: &str) -> Result<()> {
        netns::run_in_netns(netns, move || {
            for attach_type in [TcAttachType::Ingress, TcAttachType::Egress] {
                let link = SchedClassifierLink::attached(
                    ifname,
                    attach_type,
                    TC_PRIORITY,
                    TC_HANDLE.into(),
                    None,
                )
                .with_context(|| format!("no interface {ifname:?}"))?;
                match link.detach() {
                    Ok(()) => {}
                    Err(e) if is_errno(&e, Errno::ENOENT) => {}
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!("detaching ward from {ifname} ({attach_type:?})")
                        });
                    }
                }
            }
            Ok(())
        })
    }
}

impl Deref for NodeDatapath {
    type Target = NodeMaps;

    fn deref(&self) -> &NodeMaps {
        &self.maps
    }
}

impl DerefMut for NodeDatapath {
    fn deref_mut(&mut self) -> &mut NodeMaps {
        &mut self.maps
    }
}

fn classifier<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut SchedClassifier> {
    let prog = ebpf
        .program_mut(name)
        .with_context(|| format!("the BPF object has no program {name}"))?;
    prog.try_into()
        .with_context(|| format!("the BPF program {name} is not a TC classifier"))
}

/// How many times a program load is tried while the verifier gives up on a pending signal.
const LOAD_ATTEMPTS: u32 = 5;

/// Loads `prog` into the kernel. The verifier abandons its work with EAGAIN when a signal
/// is pending for the loading thread (any signal the process handles, and the kernel's own
/// notifications), though nothing was wrong with the program. So the thread's signals wait
/// until the load is done (the verifier needs milliseconds), and a load that still ends with
/// EAGAIN (notifications cannot be blocked) is tried again, as libbpf does.
fn load_classifier(prog: &mut SchedClassifier) -> Result<(), ProgramError> {
    let _held = SignalsHeld::new();
    let mut attempt = 1;
    loop {
        match prog.load() {
            Err(e) if attempt < LOAD_ATTEMPTS && is_errno(&e, Errno::EAGAIN) => attempt += 1,
            done => return done,
        }
    }
}

/// The calling thread's signals blocked while it lives; its old mask is restored on drop,
/// and what arrived meanwhile is delivered then.
struct SignalsHeld(Option<SigSet>);

impl SignalsHeld {
    fn new() -> SignalsHeld {
        // Not blocked on an error: the retries alone then cover a pending signal.
        SignalsHeld(SigSet::all().thread_swap_mask(SigmaskHow::SIG_BLOCK).ok())
    }
}

impl Drop for SignalsHeld {
    fn drop(&mut self) {
        if let Some(old) = self.0 {
            let _ = old.thread_set_mask();
        }
    }
}

fn is_errno(err: &ProgramError, errno: Errno) -> bool {
    match err {
        ProgramError::TcError(TcError::NetlinkError(e)) => e.raw_os_error() == Some(errno as i32),
        other => os_error(other) == Some(errno as i32),
    }
}

/// Puts program `name` into ward's filter on `ifname`'s hook, replacing the program of an
/// existing ward filter in place, or creating the filter.
fn attach_one(ebpf: &mut Ebpf, name: &str, ifname: &str, attach_type: TcAttachType) -> Result<()> {
    let prog = classifier(ebpf, name)?;
    let existing =
        SchedClassifierLink::attached(ifname, attach_type, TC_PRIORITY, TC_HANDLE.into(), None)
            .with_context(|| format!("no interface {ifname:?}"))?;
    // A netlink change without NLM_F_CREATE: the kernel swaps the program of the existing
    // filter atomically, or answers ENOENT when there is no such filter yet.
    let link_id = match prog.attach_to_link(existing) {
        Ok(id) => id,
        Err(e) if is_errno(&e, Errno::ENOENT) => prog
            .attach_with_options(
                ifname,
                attach_type,
                TcAttachOptions::Netlink(NlOptions {
                    priority: TC_PRIORITY,
                    handle: TC_HANDLE.into(),
                    ..NlOptions::default()
                }),
            )
            .with_context(|| format!("attaching {name} to {ifname} ({attach_type:?})"))?,
        Err(e) => {
            return Err(e).with_context(|| {
                format!("replacing the program of ward's filter on {ifname} ({attach_type:?})")
            });
        }
    };
    // Dropping the link (or the program) would delete the filter: the filter must outlive
    // this process, so the link is taken from aya and deliberately leaked. It holds only
    // (ifindex, hook, priority, handle), no file descriptor or memory worth reclaiming.
    let link = prog
        .take_link(link_id)
        .with_context(|| format!("taking the TC link of {name} on {ifname}"))?;
    std::mem::forget(link);
    Ok(())
}

fn check_privileges() -> Result<()> {
    const CAP_NET_ADMIN: u32 = 12;
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_BPF: u32 = 39;
    let cap_eff = crate::sys::effective_capabilities()?;
    let has = |cap: u32| cap_eff & (1u64 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_NET_ADMIN)) {
        return Ok(());
    }
    bail!(
        "loading ward's BPF datapath needs root (CAP_BPF and CAP_NET_ADMIN, or CAP_SYS_ADMIN): \
         run it as root, e.g. with sudo"
    )
}

fn check_bpffs() -> Result<()> {
    let root = Path::new(PIN_ROOT);
    let bpffs = root.parent().unwrap_or(root);
    if !HostMounts.is_bpffs(bpffs) {
        bail!(
            "{} is not a bpf filesystem; mount it first: mount -t bpf bpf {}",
            bpffs.display(),
            bpffs.display()
        );
    }
    Ok(())
}

/// Adds what to do when the kernel said EPERM (EACCES is also what the verifier answers for
/// a rejected program, so it gets no hint: the verifier log says more).
fn privilege_hint(err: anyhow::Error) -> anyhow::Error {
    if err.chain().find_map(os_error) == Some(Errno::EPERM as i32) {
        err.context(
            "permission denied by the kernel: run as root (CAP_BPF, CAP_NET_ADMIN, \
             CAP_PERFMON), and check that no LSM forbids BPF",
        )
    } else {
        err
    }
}
