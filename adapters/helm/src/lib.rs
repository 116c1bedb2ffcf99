//! The parts of the `helm` runtime that need no cluster: reading a Helm chart (a folder or the
//! `.tgz` a chart registry holds), turning a component's Margo parameters into values, and
//! rendering the chart's templates into Kubernetes manifests the way `helm template` does.
//! Templates run on Go's text/template language (gtmpl-ng, with its Helm functions) plus
//! `include`, `nindent` and `tpl`, which need the chart's own named templates.
//!
//! Applying the manifests to a cluster and watching their readiness are not built: no cluster
//! can run where EOS is tested, and no EN lists the `helm` runtime, so none is ever given one.

mod chart;
mod render;
mod values;

pub use chart::{Chart, ChartError};
pub use render::{Manifest, Release, RenderError, render};
pub use values::{merge, overrides};
