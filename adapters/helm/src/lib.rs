//! The `helm` runtime: reading a Helm chart (a folder or the
//! `.tgz` a chart registry holds), turning a component's Margo parameters into values, and
//! rendering the chart's templates into Kubernetes manifests the way `helm template` does.
//! Templates run on Go's text/template language (gtmpl-ng, with its Helm functions) plus
//! `include`, `nindent` and `tpl`, which need the chart's own named templates.
//!
//! `HelmDriver` applies the manifests to a cluster through kube (server-side apply) and
//! watches the workloads' readiness, after `podsecurity` judged every pod they make. No cluster can run where EOS is tested: its calls are
//! checked against a recording stand-in of the Kubernetes API, and the EN only lists the
//! `helm` runtime where a cluster answers.

#[cfg(feature = "testing")]
pub mod testing;

mod chart;
mod driver;
pub mod podsecurity;
mod render;
mod values;

pub use chart::{Chart, ChartError};
pub use driver::HelmDriver;
pub use render::{Manifest, Release, RenderError, render};
pub use values::{merge, overrides};
