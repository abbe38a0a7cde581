//! Cross-checks on the derived plan: two services of one host on the same port.

use std::collections::{HashMap, HashSet};

use kiln_model::plan::{Plan, Proto};

use super::Checker;
use crate::diag::SpecSource;

impl Checker {
    pub(super) fn ports(&mut self, plan: &Plan, src: &SpecSource) {
        let mut reported: HashSet<(String, String)> = HashSet::new();
        for p in &plan.profiles {
            let mut seen: HashMap<(u16, Proto), (&str, &str)> = HashMap::new();
            for s in &p.services {
                for port in s.ports.iter().filter(|x| x.proto != Proto::Ipip) {
                    if port.port == 0 {
                        if reported.insert((port.key.clone(), String::new())) {
                            self.err(
                                &port.key,
                                "port 0 is not a port a service can listen on",
                                "use a port from 1 to 65535",
                            );
                        }
                        continue;
                    }
                    let Some((unit, key)) =
                        seen.insert((port.port, port.proto), (&s.unit, &port.key))
                    else {
                        continue;
                    };
                    if key == port.key {
                        continue;
                    }
                    // Point at the key the spec writes, not at a default it never mentions.
                    let (here, other) = if src.has_key(&port.key) || !src.has_key(key) {
                        (port.key.as_str(), key)
                    } else {
                        (key, port.key.as_str())
                    };
                    if reported.insert((here.to_string(), other.to_string())) {
                        let users = if unit == s.unit {
                            unit.to_string()
                        } else {
                            format!("{unit} and {}", s.unit)
                        };
                        self.err(
                            here,
                            format!(
                                "port {} is used twice on {} hosts: {here} and {other} ({users})",
                                port.port, p.name
                            ),
                            format!("give {here} another port"),
                        );
                    }
                }
            }
        }
    }
}
