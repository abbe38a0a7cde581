//! Provisioning renderers: kickstart, cloud-init (NoCloud) and PXE configs. **Not started**
//! (issues 10 and 11). They will take the typed host plan ([`kiln_model::plan::HostPlan`])
//! and render through [`kiln_model::templates::Templates`], never reaching back into
//! `builder`.

pub use kiln_model::plan::HostPlan;
