//! The deployments repository layout (DESIGN.md, binding):
//!
//! ```text
//! sites/<site-id>/site.yaml
//! sites/<site-id>/manifest.yaml
//! sites/<site-id>/deployments/<deployment-id>.yaml
//! ```

use crate::ids::{DeploymentId, SiteId};
use crate::margo::ApplicationDeployment;
use crate::margo::manifest::{digest_of, is_digest};
use crate::placement::Schedule;
use crate::{Problem, Problems};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub fn site_dir(site: &SiteId) -> String {
    format!("sites/{site}")
}
pub fn site_file(site: &SiteId) -> String {
    format!("sites/{site}/site.yaml")
}
pub fn manifest_file(site: &SiteId) -> String {
    format!("sites/{site}/manifest.yaml")
}
pub fn deployments_dir(site: &SiteId) -> String {
    format!("sites/{site}/deployments")
}
pub fn deployment_file(site: &SiteId, id: &DeploymentId) -> String {
    format!("sites/{site}/deployments/{id}.yaml")
}

/// `site.yaml`: what the CO knows of a site that its LO needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SiteFile {
    pub id: SiteId,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The site's IANA time zone (`Europe/Berlin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Hosts that take no new workloads; what runs there stays.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub cordoned: BTreeSet<String>,
    /// Hosts whose workloads move to other hosts, and that take none.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub draining: BTreeSet<String>,
}

impl SiteFile {
    /// A site file with no labels and every host open.
    pub fn new(id: SiteId) -> Self {
        Self {
            id,
            labels: BTreeMap::new(),
            time_zone: None,
            cordoned: BTreeSet::new(),
            draining: BTreeSet::new(),
        }
    }

    /// Whether the host takes workloads (draining wins over cordoned).
    pub fn schedule(&self, host: &str) -> Schedule {
        if self.draining.contains(host) {
            Schedule::Draining
        } else if self.cordoned.contains(host) {
            Schedule::Cordoned
        } else {
            Schedule::Open
        }
    }

    /// Records the host's schedule.
    pub fn set_schedule(&mut self, host: &str, schedule: Schedule) {
        self.cordoned.remove(host);
        self.draining.remove(host);
        match schedule {
            Schedule::Open => {}
            Schedule::Cordoned => {
                self.cordoned.insert(host.to_owned());
            }
            Schedule::Draining => {
                self.draining.insert(host.to_owned());
            }
        }
    }
}

/// `manifest.yaml`: the strictly increasing version and the digest of every deployment file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteManifest {
    pub manifest_version: u64,
    #[serde(default)]
    pub deployments: Vec<SiteManifestEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteManifestEntry {
    pub deployment_id: DeploymentId,
    pub digest: String,
}

/// One site's desired state as read from (or written to) the repository.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteDesiredState {
    pub site: SiteId,
    pub manifest_version: u64,
    pub deployments: BTreeMap<DeploymentId, ApplicationDeployment>,
    /// `site.yaml`: labels, cordoned and draining hosts.
    pub meta: SiteFile,
}

/// The files of a site's desired state: path → exact bytes.
pub type SiteFiles = BTreeMap<String, String>;

impl SiteDesiredState {
    /// Renders the site's files. Deployment YAML bytes are what the manifest's digests cover.
    pub fn to_files(&self) -> SiteFiles {
        let mut files = SiteFiles::new();
        let mut entries = Vec::new();
        for (id, d) in &self.deployments {
            let yaml = d.to_yaml();
            entries.push(SiteManifestEntry {
                deployment_id: id.clone(),
                digest: digest_of(yaml.as_bytes()),
            });
            files.insert(deployment_file(&self.site, id), yaml);
        }
        let manifest = SiteManifest {
            manifest_version: self.manifest_version,
            deployments: entries,
        };
        files.insert(
            manifest_file(&self.site),
            serde_yaml::to_string(&manifest).expect("manifest serializes"),
        );
        files.insert(
            site_file(&self.site),
            serde_yaml::to_string(&self.meta).expect("site serializes"),
        );
        files
    }

    /// Reads and validates a site's files. Every problem is reported with its file; nothing
    /// partial is returned, so a bad commit can never replace a good state.
    pub fn from_files(site: &SiteId, files: &SiteFiles) -> Result<Self, Problems> {
        let mut problems = Problems::default();
        let manifest_path = manifest_file(site);
        let Some(text) = files.get(&manifest_path) else {
            problems.push(manifest_path, "missing");
            return Err(problems);
        };
        let manifest: SiteManifest = match serde_yaml::from_str(text) {
            Ok(m) => m,
            Err(e) => {
                problems.push(manifest_path, format!("not a site manifest: {e}"));
                return Err(problems);
            }
        };
        if manifest.manifest_version == 0 {
            problems.push(
                format!("{manifest_path}: manifestVersion"),
                "must be at least 1",
            );
        }
        let mut deployments = BTreeMap::new();
        for entry in &manifest.deployments {
            read_deployment(site, entry, files, &mut deployments, &mut problems);
        }
        let listed: Vec<String> = manifest
            .deployments
            .iter()
            .map(|e| deployment_file(site, &e.deployment_id))
            .collect();
        let prefix = format!("{}/", deployments_dir(site));
        for path in files
            .keys()
            .filter(|p| p.starts_with(&prefix) && !listed.contains(p))
        {
            problems.push(path.clone(), "not listed in manifest.yaml");
        }
        let meta = read_site_file(site, files, &mut problems);
        problems.into_result(Self {
            site: site.clone(),
            manifest_version: manifest.manifest_version,
            deployments,
            meta,
        })
    }
}

/// `site.yaml`, checked: its id is the site's and the hosts it names are host names. Missing,
/// every host is open (a repository written before the file carried schedules).
fn read_site_file(site: &SiteId, files: &SiteFiles, problems: &mut Problems) -> SiteFile {
    let path = site_file(site);
    let Some(text) = files.get(&path) else {
        return SiteFile::new(site.clone());
    };
    let meta: SiteFile = match serde_yaml::from_str(text) {
        Ok(m) => m,
        Err(e) => {
            problems.push(path, format!("not a site file: {e}"));
            return SiteFile::new(site.clone());
        }
    };
    if meta.id != *site {
        problems.push(format!("{path}: id"), format!("must be {site}"));
    }
    for (key, hosts) in [("cordoned", &meta.cordoned), ("draining", &meta.draining)] {
        for host in hosts {
            if crate::ids::DeviceId::parse(&format!("{site}/{host}")).is_err() {
                problems.push(
                    format!("{path}: {key}"),
                    format!("{host:?} is not a host name"),
                );
            }
        }
    }
    meta
}

fn read_deployment(
    site: &SiteId,
    entry: &SiteManifestEntry,
    files: &SiteFiles,
    out: &mut BTreeMap<DeploymentId, ApplicationDeployment>,
    problems: &mut Problems,
) {
    let path = deployment_file(site, &entry.deployment_id);
    let Some(text) = files.get(&path) else {
        problems.push(path, "listed in manifest.yaml but missing");
        return;
    };
    if !is_digest(&entry.digest) || digest_of(text.as_bytes()) != entry.digest {
        problems.push(
            path.clone(),
            format!(
                "content does not match the manifest digest {}",
                entry.digest
            ),
        );
    }
    match ApplicationDeployment::from_yaml(text) {
        Err(found) => problems.0.extend(
            found
                .0
                .into_iter()
                .map(|p| Problem::new(format!("{path}: {}", p.path), p.message)),
        ),
        Ok(d) if d.id != entry.deployment_id.as_str() => problems.push(
            format!("{path}: id"),
            format!("{} does not match the file name", d.id),
        ),
        Ok(d) => {
            if d.target().is_none_or(|t| t.site() != site) {
                problems.push(
                    format!("{path}: metadata.deviceId"),
                    format!("must be {site}/<host> or {site}/*"),
                );
            }
            out.insert(entry.deployment_id.clone(), d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> SiteId {
        SiteId::parse("s1").unwrap()
    }

    fn state(meta: SiteFile) -> SiteDesiredState {
        SiteDesiredState {
            site: site(),
            manifest_version: 3,
            deployments: BTreeMap::new(),
            meta,
        }
    }

    #[test]
    fn site_yaml_carries_the_schedules_of_hosts() {
        let mut meta = SiteFile::new(site());
        meta.set_schedule("n1", Schedule::Cordoned);
        meta.set_schedule("n2", Schedule::Draining);
        meta.set_schedule("n3", Schedule::Cordoned);
        meta.set_schedule("n3", Schedule::Open);
        let files = state(meta.clone()).to_files();
        assert_eq!(
            files["sites/s1/site.yaml"],
            "id: s1\nlabels: {}\ncordoned:\n- n1\ndraining:\n- n2\n"
        );
        let read = SiteDesiredState::from_files(&site(), &files).unwrap();
        assert_eq!(read.meta, meta);
        assert_eq!(read.meta.schedule("n1"), Schedule::Cordoned);
        assert_eq!(read.meta.schedule("n2"), Schedule::Draining);
        assert_eq!(read.meta.schedule("n3"), Schedule::Open);
    }

    #[test]
    fn a_site_without_schedules_writes_the_file_it_always_did() {
        let files = state(SiteFile::new(site())).to_files();
        assert_eq!(files["sites/s1/site.yaml"], "id: s1\nlabels: {}\n");
        let mut without = files.clone();
        without.remove("sites/s1/site.yaml");
        let read = SiteDesiredState::from_files(&site(), &without).unwrap();
        assert_eq!(
            read.meta,
            SiteFile::new(site()),
            "no site.yaml: every host open"
        );
    }

    #[test]
    fn a_bad_site_yaml_is_refused_with_its_place() {
        let mut files = state(SiteFile::new(site())).to_files();
        for (text, expected) in [
            ("id: s2\n", "sites/s1/site.yaml: id: must be s1"),
            (
                "id: s1\ndraining: [Not A Host]\n",
                "sites/s1/site.yaml: draining: \"Not A Host\" is not a host name",
            ),
            ("id: s1\ncordon: [n1]\n", "unknown field `cordon`"),
        ] {
            files.insert("sites/s1/site.yaml".into(), text.into());
            let problems = SiteDesiredState::from_files(&site(), &files).unwrap_err();
            assert!(
                problems.to_string().contains(expected),
                "{text}: {problems}"
            );
        }
    }
}
