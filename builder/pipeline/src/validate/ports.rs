//! Cross-checks on the derived plan: two services of one host on the same port, or on
//! overlapping ranges (the Mesos agent's task ports).

use std::collections::HashSet;

use kiln_model::plan::{Plan, Port, Proto};

use super::Checker;
use crate::diag::SpecSource;

impl Checker {
    pub(super) fn ports(&mut self, plan: &Plan, src: &SpecSource) {
        let mut reported: HashSet<(String, String)> = HashSet::new();
        for p in &plan.profiles {
            let mut seen: Vec<(&Port, &str)> = Vec::new();
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
                    let clash = seen.iter().find(|(q, _)| {
                        q.proto == port.proto && q.port <= port.end() && port.port <= q.end()
                    });
                    let Some(&(other_port, unit)) = clash else {
                        seen.push((port, &s.unit));
                        continue;
                    };
                    let key = other_port.key.as_str();
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
                        let what = if port.last.is_none() && other_port.last.is_none() {
                            format!("port {} is used twice", port.port)
                        } else {
                            format!(
                                "ports {} and {} overlap",
                                other_port.number(),
                                port.number()
                            )
                        };
                        self.err(
                            here,
                            format!("{what} on {} hosts: {here} and {other} ({users})", p.name),
                            format!("give {here} another port"),
                        );
                    }
                }
            }
        }
    }
}
