//! kiln's model: the checked value types ([`values`]) and the resolved cluster ([`plan`]).
//!
//! `builder` turns a spec into a [`plan::Plan`]; components, image builders and provisioning
//! renderers (`kickstart`) read only the plan, so dependency arrows point one way:
//! `builder → kickstart → model`, `builder → images → layers`, `builder → model`.

pub mod plan;
pub mod templates;
pub mod values;
