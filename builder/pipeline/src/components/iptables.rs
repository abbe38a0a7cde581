//! The iptables mode of a profile ([`IptablesPlan`](kiln_model::plan::IptablesPlan), derived
//! from the Calico release in `validate::derive`): where it is legacy, the role image points
//! the base's `iptables` and `ip6tables` at `iptables-legacy`, as `update-alternatives --set`
//! would, so Docker, the CNI plugins and firewalld's iptables backend (the firewall component
//! switches it) write their rules where calico-node writes its own. kiln builds images from
//! file trees and runs nothing in them, so it writes what `update-alternatives --set` leaves:
//! the `/etc/alternatives` links of the group (master and slaves) and the group's state in
//! dpkg's alternatives database, in manual mode, so that a later `dpkg`/`apt` run (an
//! upgrade of `iptables` re-running its postinst) keeps the choice.
//!
//! Only on a base of Debian's layout (declared `debian`, or undeclared: the default base is
//! `debian:bookworm`). A RHEL-family base has no such alternatives to switch: CentOS 7's
//! iptables is legacy only, and RHEL 8 and 9 ship no legacy iptables (the presence check
//! refuses a base whose `iptables` is the nf_tables one).
//!
//! `arptables` and `ebtables` are left alone: Debian's `iptables` package registers only their
//! nft variants (the legacy ones are the separate `arptables` and `ebtables` packages), and
//! none of calico-node, Docker or the CNI plugins uses them.

use kiln_layers::Entry;
use kiln_model::plan::{ComponentId, IptablesMode};
use kiln_model::values::BaseFamily;
use minijinja::context;

use super::{Component, Ctx, RenderError};

/// The iptables component.
pub(crate) struct Iptables;

/// Where Debian's iptables programs and their alternatives links live.
const SBIN: &str = "/usr/sbin";

/// The alternatives groups kiln switches, each with its slaves, as Debian bookworm's
/// `iptables` 1.8.9-2 postinst registers them (`debian/iptables.postinst`: `update-alternatives
/// --install /usr/sbin/iptables iptables /usr/sbin/iptables-legacy 10 --slave
/// /usr/sbin/iptables-restore iptables-restore /usr/sbin/iptables-legacy-restore --slave
/// /usr/sbin/iptables-save iptables-save /usr/sbin/iptables-legacy-save`, the same for
/// `ip6tables`, and `-nft` at priority 20 for both). Slaves in dpkg's order (by name).
const GROUPS: [&str; 2] = ["iptables", "ip6tables"];
const SLAVES: [&str; 2] = ["restore", "save"];
/// The two choices of each group and their priorities (nft wins in auto mode: 20 > 10).
const CHOICES: [(&str, u32); 2] = [("legacy", 10), ("nft", 20)];

/// dpkg's alternatives state directory (`update-alternatives --admindir`).
const ADMIN_DIR: &str = "/var/lib/dpkg/alternatives";
/// Where the alternatives links point (`--altdir`).
const ALT_DIR: &str = "/etc/alternatives";

/// Every program of the groups kiln switches, by the path other programs run
/// (`/usr/sbin/iptables`, `/usr/sbin/iptables-save`, …): what must be legacy on the host.
pub(crate) fn programs() -> Vec<String> {
    GROUPS
        .iter()
        .flat_map(|g| {
            std::iter::once(format!("{SBIN}/{g}"))
                .chain(SLAVES.iter().map(move |s| format!("{SBIN}/{g}-{s}")))
        })
        .collect()
}

/// Whether the base takes Debian's alternatives (declared Debian, or undeclared).
pub(crate) fn debian_layout(family: Option<BaseFamily>) -> bool {
    family != Some(BaseFamily::Rhel)
}

impl Component for Iptables {
    fn id(&self) -> ComponentId {
        ComponentId::Iptables
    }

    fn role_files(&self, ctx: &mut Ctx) -> Result<(), RenderError> {
        if ctx.profile.iptables.mode != IptablesMode::Legacy || !debian_layout(ctx.plan.base.family)
        {
            return Ok(());
        }
        for g in GROUPS {
            // The links `update-alternatives --set GROUP /usr/sbin/GROUP-legacy` makes.
            ctx.add(
                &format!("{ALT_DIR}/{g}"),
                Entry::symlink(format!("{SBIN}/{g}-legacy")),
            )?;
            for s in SLAVES {
                ctx.add(
                    &format!("{ALT_DIR}/{g}-{s}"),
                    Entry::symlink(format!("{SBIN}/{g}-legacy-{s}")),
                )?;
            }
            // The group's state as it then saves it: dpkg 1.21.22 (bookworm's)
            // `utils/update-alternatives.c` `alternative_save` (l.1565–1650) writes the
            // status, the master link, each slave's name and link, an empty line, then each
            // choice's file, priority and slave files, and an empty line; slaves and choices
            // sorted by name (l.1604–1605).
            let slaves: Vec<_> = SLAVES
                .iter()
                .map(|s| context! { name => format!("{g}-{s}"), link => format!("{SBIN}/{g}-{s}") })
                .collect();
            let choices: Vec<_> = CHOICES
                .iter()
                .map(|(c, priority)| {
                    context! {
                        path => format!("{SBIN}/{g}-{c}"),
                        priority,
                        slaves => SLAVES.iter().map(|s| format!("{SBIN}/{g}-{c}-{s}")).collect::<Vec<_>>(),
                    }
                })
                .collect();
            ctx.template(
                &format!("{ADMIN_DIR}/{g}"),
                0o644,
                "dpkg-alternatives",
                context! { status => "manual", link => format!("{SBIN}/{g}"), slaves, choices },
            )?;
        }
        Ok(())
    }
}
