//! kiln: bakes immutable host images for a Calico-networked Apache Mesos cluster.
