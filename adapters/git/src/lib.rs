//! The deployments Git repository. The CO writes each site's desired state as one commit and
//! pushes it; LOs fetch and read their site's files. Any Git server works; the embedded default
//! is a local bare repository. Uses the `git` command line, which every EOS host has.

mod command;
mod package;
mod reader;
mod writer;

pub use command::GitError;
pub use package::{MAX_BYTES as MAX_PACKAGE_BYTES, PackageFetcher, read_in_package};
pub use reader::{FetchedSite, SiteReader};
pub use writer::DeploymentsWriter;

/// The branch EOS writes desired state to.
pub const BRANCH: &str = "main";
