//! `[access]` and the hosts' own `ssh_authorized_keys` / `root_password_hash`: root's login
//! secrets, checked into [`SshPublicKey`] and [`PasswordHash`]. A refused password value is
//! never quoted, and its source line is shown masked ([`crate::diag::Diagnostic::secret`]):
//! it may be a plaintext password.

use kiln_model::plan::AccessPlan;
use kiln_model::values::{PasswordHash, SshPublicKey, ValueError};

use super::Checker;
use crate::diag::Diagnostic;
use crate::spec::{Access, Host};

impl Checker {
    /// The cluster's `[access]`; what failed is left out (its errors are reported).
    pub(super) fn cluster_access(&mut self, a: &Access) -> AccessPlan {
        AccessPlan {
            ssh_authorized_keys: self
                .vals::<SshPublicKey>("access.ssh_authorized_keys", &a.ssh_authorized_keys)
                .unwrap_or_default(),
            root_password_hash: a
                .root_password_hash
                .as_deref()
                .and_then(|s| self.password_hash("access.root_password_hash", s)),
        }
    }

    /// Host `i`'s secrets: its own keys and hash where it sets them, else the cluster's.
    pub(super) fn host_access(
        &mut self,
        i: usize,
        h: &Host,
        cluster: &AccessPlan,
    ) -> Option<AccessPlan> {
        let keys = match &h.ssh_authorized_keys {
            Some(list) => self.vals(&format!("hosts[{i}].ssh_authorized_keys"), list)?,
            None => cluster.ssh_authorized_keys.clone(),
        };
        let hash = match &h.root_password_hash {
            Some(s) => Some(self.password_hash(&format!("hosts[{i}].root_password_hash"), s)?),
            None => cluster.root_password_hash.clone(),
        };
        Some(AccessPlan {
            ssh_authorized_keys: keys,
            root_password_hash: hash,
        })
    }

    /// A password hash, or an error at `key` that masks the value.
    fn password_hash(&mut self, key: &str, s: &str) -> Option<PasswordHash> {
        match PasswordHash::parse(s) {
            Ok(h) => Some(h),
            Err(ValueError { problem, help }) => {
                self.push(Diagnostic::error(key, problem).help(help).secret());
                None
            }
        }
    }
}
