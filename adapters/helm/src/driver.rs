//! The `helm` runtime driver: a component is a chart (a `.tgz` or a folder the EN has at a
//! `file://` path) rendered with its Margo parameters and applied to a Kubernetes cluster
//! through kube, by server-side apply under the field manager `eos`. Every object is labelled
//! with the EOS deployment, component and spec digest. What was applied is recorded per
//! component in the driver's folder (and in the handle), so `inspect`, `remove`, `recover` and
//! `prune` act on exactly those objects. A component is running while its Deployments,
//! StatefulSets and DaemonSets are ready. The driver exists only where a cluster answers (`connect`), so the EN never lists
//! `helm` without one.

use crate::{Chart, Manifest, Release, merge, overrides, render};
use eos_domain::state::ComponentSpec;
use eos_driver::{
    DriverError, DriverInfo, Fingerprint, Handle, Health, InstanceKey, RuntimeDriver,
};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::time::Duration;

/// The field manager EOS applies as.
pub const FIELD_MANAGER: &str = "eos";
/// Labels on every object the driver applies.
pub const LABEL_DEPLOYMENT: &str = "eos.dev/deployment";
pub const LABEL_COMPONENT: &str = "eos.dev/component";
pub const LABEL_SPEC: &str = "eos.dev/spec";

/// How long `apply` waits for the workloads to be ready when the component asks to `wait`.
pub const READY_WITHIN: Duration = Duration::from_secs(300);

pub struct HelmDriver {
    client: kube::Client,
    version: String,
    /// One record per component: what was applied for it.
    root: PathBuf,
    /// The namespace components go to unless their settings name one.
    namespace: String,
}

/// One applied object, as the handle keeps it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Applied {
    api_version: String,
    kind: String,
    namespace: Option<String>,
    name: String,
}

impl HelmDriver {
    /// Connects to the cluster a kubeconfig names and asks its version. Fails when none answers:
    /// the EN then runs without the `helm` runtime.
    pub async fn connect(
        kubeconfig: &std::path::Path,
        namespace: &str,
        root: PathBuf,
    ) -> Result<Self, DriverError> {
        let unreachable = |e: String| {
            DriverError::Other(format!(
                "no cluster answers for {}: {e}",
                kubeconfig.display()
            ))
        };
        let config = kube::config::Kubeconfig::read_from(kubeconfig)
            .map_err(|e| unreachable(e.to_string()))?;
        let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let client = kube::Client::try_from(config).map_err(|e| unreachable(e.to_string()))?;
        let info = client
            .apiserver_version()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(Self {
            client,
            version: format!("kubernetes {}", info.git_version),
            root,
            namespace: namespace.to_owned(),
        })
    }

    fn record_path(&self, key: &InstanceKey) -> PathBuf {
        self.root
            .join(sanitize(&key.deployment_id))
            .join(format!("{}.json", sanitize(&key.component)))
    }

    fn record(&self, key: &InstanceKey) -> Option<Handle> {
        let bytes = std::fs::read(self.record_path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn keep_record(&self, key: &InstanceKey, handle: &Handle) -> Result<(), DriverError> {
        let path = self.record_path(key);
        let io = |e: std::io::Error| DriverError::Other(format!("{}: {e}", path.display()));
        std::fs::create_dir_all(path.parent().expect("records live in a folder")).map_err(io)?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(handle).expect("handles serialize")).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }

    /// Deletes every object a handle lists (objects already gone are fine), then the record.
    async fn delete(&self, key: &InstanceKey, handle: &Handle) -> Result<(), DriverError> {
        for object in applied_of(handle) {
            let api = self.api(&object).await?;
            match api.delete(&object.name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    return Err(DriverError::Other(format!(
                        "cannot delete {}/{}: {e}",
                        object.kind, object.name
                    )));
                }
            }
        }
        let path = self.record_path(key);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(DriverError::Other(format!("{}: {e}", path.display()))),
        }
        if let Some(parent) = path.parent() {
            let _ = std::fs::remove_dir(parent);
        }
        Ok(())
    }

    fn release(&self, key: &InstanceKey, spec: &ComponentSpec) -> Release {
        let namespace = spec.settings["helm"]["namespace"]
            .as_str()
            .unwrap_or(&self.namespace)
            .to_owned();
        Release {
            name: release_name(key),
            namespace,
        }
    }

    async fn resource(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<(ApiResource, ApiCapabilities), DriverError> {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|e| {
                DriverError::Start(format!(
                    "the cluster does not serve {api_version} {kind}: {e}"
                ))
            })
    }

    async fn api(&self, object: &Applied) -> Result<Api<DynamicObject>, DriverError> {
        let (resource, caps) = self.resource(&object.api_version, &object.kind).await?;
        Ok(match (caps.scope, &object.namespace) {
            (Scope::Namespaced, Some(ns)) => {
                Api::namespaced_with(self.client.clone(), ns, &resource)
            }
            _ => Api::all_with(self.client.clone(), &resource),
        })
    }

    /// Whether every workload among `objects` has as many ready replicas as it wants.
    async fn ready(&self, objects: &[Applied]) -> Result<bool, DriverError> {
        for object in objects
            .iter()
            .filter(|o| matches!(o.kind.as_str(), "Deployment" | "StatefulSet" | "DaemonSet"))
        {
            let api = self.api(object).await?;
            let found = api
                .get_opt(&object.name)
                .await
                .map_err(|e| DriverError::Other(e.to_string()))?;
            let Some(found) = found else { return Ok(false) };
            let status = &found.data["status"];
            let ready = match object.kind.as_str() {
                "DaemonSet" => {
                    status["numberReady"].as_u64().unwrap_or(0)
                        >= status["desiredNumberScheduled"].as_u64().unwrap_or(1)
                }
                _ => {
                    let wanted = found.data["spec"]["replicas"].as_u64().unwrap_or(1);
                    status["readyReplicas"].as_u64().unwrap_or(0) >= wanted
                }
            };
            if !ready {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `eos-<deployment>-<component>`, in the characters Kubernetes names allow. Longer than the 53
/// characters Helm allows a release name (a UUID deployment id leaves little room), it is cut
/// and ends with a digest of the whole, so two components never share a release.
fn release_name(key: &InstanceKey) -> String {
    let raw = format!("eos-{}-{}", key.deployment_id, key.component).to_lowercase();
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if clean.len() <= 53 {
        return clean.trim_end_matches('-').to_owned();
    }
    let digest = hex::encode(&Sha256::digest(clean.as_bytes())[..4]);
    format!("{}-{digest}", clean[..44].trim_end_matches('-'))
}

fn spec_digest(spec: &ComponentSpec) -> String {
    let json = serde_json::to_vec(spec).expect("a spec serializes");
    hex::encode(&Sha256::digest(&json)[..12])
}

fn chart_of(spec: &ComponentSpec) -> Result<Chart, DriverError> {
    let fetch = |reason: String| DriverError::Fetch {
        repository: spec.repository.clone(),
        reason,
    };
    let path =
        PathBuf::from(spec.repository.strip_prefix("file://").ok_or_else(|| {
            fetch("the EN hands the helm driver a chart as a file:// path".into())
        })?);
    let chart = if path.is_dir() {
        Chart::from_dir(&path)
    } else {
        let bytes = std::fs::read(&path).map_err(|e| fetch(format!("{}: {e}", path.display())))?;
        Chart::from_archive(&bytes)
    };
    chart.map_err(|e| fetch(e.to_string()))
}

/// The objects to apply: the rendered manifests, each labelled as EOS's and placed in the
/// release's namespace when it names none.
fn labelled(manifests: Vec<Manifest>, key: &InstanceKey, digest: &str) -> Vec<Value> {
    manifests
        .into_iter()
        .map(|m| {
            let mut object = m.object;
            let labels = object["metadata"]
                .as_object_mut()
                .expect("rendered objects have metadata")
                .entry("labels")
                .or_insert_with(|| json!({}));
            if let Some(labels) = labels.as_object_mut() {
                labels.insert(LABEL_DEPLOYMENT.into(), json!(key.deployment_id));
                labels.insert(LABEL_COMPONENT.into(), json!(key.component));
                labels.insert(LABEL_SPEC.into(), json!(digest));
            }
            object
        })
        .collect()
}

impl HelmDriver {
    /// Refuses, before anything is applied, a chart that would take over an object this
    /// component did not create (one that exists without its `eos.dev/deployment` and
    /// `eos.dev/component` labels), or create a cluster-scoped object while the workload
    /// security policy allows none.
    async fn check_ownership(
        &self,
        key: &InstanceKey,
        spec: &ComponentSpec,
        release: &Release,
        objects: &[Value],
    ) -> Result<(), DriverError> {
        let cluster_scoped = spec.workload.as_ref().is_some_and(|w| w.cluster_scoped);
        for object in objects {
            let api_version = object["apiVersion"].as_str().unwrap_or_default();
            let kind = object["kind"].as_str().unwrap_or_default();
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            let (resource, caps) = self.resource(api_version, kind).await?;
            let api: Api<DynamicObject> = match caps.scope {
                Scope::Namespaced => {
                    let ns = object["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or(&release.namespace);
                    Api::namespaced_with(self.client.clone(), ns, &resource)
                }
                Scope::Cluster if !cluster_scoped => {
                    return Err(DriverError::Start(format!(
                        "{kind}/{name} is cluster-scoped, and the workload security policy \
                         allows no cluster-scoped objects; nothing was applied"
                    )));
                }
                Scope::Cluster => Api::all_with(self.client.clone(), &resource),
            };
            let existing = api
                .get_opt(name)
                .await
                .map_err(|e| DriverError::Start(format!("cannot read {kind}/{name}: {e}")))?;
            if let Some(existing) = existing {
                let labels = existing.metadata.labels.unwrap_or_default();
                let ours = labels.get(LABEL_DEPLOYMENT) == Some(&key.deployment_id)
                    && labels.get(LABEL_COMPONENT) == Some(&key.component);
                if !ours {
                    return Err(DriverError::Start(format!(
                        "{kind}/{name} exists and was not made by this component; EOS takes \
                         over no object it did not create, so nothing was applied"
                    )));
                }
            }
        }
        Ok(())
    }
}

fn applied_of(handle: &Handle) -> Vec<Applied> {
    serde_json::from_value(handle.data["objects"].clone()).unwrap_or_default()
}

#[async_trait::async_trait]
impl RuntimeDriver for HelmDriver {
    fn info(&self) -> DriverInfo {
        DriverInfo {
            runtime: "helm".into(),
            source: "built-in".into(),
            version: self.version.clone(),
            deployment_types: vec!["helm".into()],
        }
    }

    async fn fingerprint(&self) -> Fingerprint {
        match self.client.apiserver_version().await {
            Ok(info) => Fingerprint::Ready {
                version: format!("kubernetes {}", info.git_version),
            },
            Err(e) => Fingerprint::Unavailable {
                reason: format!("the cluster does not answer: {e}"),
            },
        }
    }

    async fn apply(&self, key: &InstanceKey, spec: &ComponentSpec) -> Result<Handle, DriverError> {
        let chart = chart_of(spec)?;
        let values_over = overrides(&spec.parameters)
            .map_err(|e| DriverError::Start(format!("parameters: {e}")))?;
        let values = merge(&chart.values, &values_over);
        let release = self.release(key, spec);
        // Rendering runs templates for up to RENDER_WITHIN: off the async threads.
        let (name, on) = (chart.name.clone(), release.clone());
        let manifests = tokio::task::spawn_blocking(move || render(&chart, &on, &values))
            .await
            .map_err(|e| DriverError::Other(format!("rendering stopped: {e}")))?
            .map_err(|e| DriverError::Start(format!("chart {name}: {e}")))?;
        let digest = spec_digest(spec);
        let objects = labelled(manifests, key, &digest);
        let policy = spec.workload.clone().unwrap_or_default();
        if let Some(why) = objects
            .iter()
            .find_map(|o| crate::podsecurity::refusal(o, &policy, &release.namespace))
        {
            return Err(DriverError::Start(format!(
                "refused by the workload security policy: {why}; nothing was applied"
            )));
        }
        self.check_ownership(key, spec, &release, &objects).await?;
        let mut applied = Vec::new();
        for object in objects {
            let api_version = object["apiVersion"].as_str().unwrap_or_default().to_owned();
            let kind = object["kind"].as_str().unwrap_or_default().to_owned();
            let name = object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let (resource, caps) = self.resource(&api_version, &kind).await?;
            let namespace = (caps.scope == Scope::Namespaced).then(|| {
                object["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or(&release.namespace)
                    .to_owned()
            });
            let api: Api<DynamicObject> = match &namespace {
                Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
                None => Api::all_with(self.client.clone(), &resource),
            };
            api.patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&object),
            )
            .await
            .map_err(|e| DriverError::Start(format!("cannot apply {kind}/{name}: {e}")))?;
            applied.push(Applied {
                api_version,
                kind,
                namespace,
                name,
            });
        }
        if spec.settings["helm"]["wait"].as_bool().unwrap_or(true) {
            let until = tokio::time::Instant::now() + READY_WITHIN;
            while !self.ready(&applied).await? {
                if tokio::time::Instant::now() >= until {
                    return Err(DriverError::Start(format!(
                        "release {} not ready within {} s",
                        release.name,
                        READY_WITHIN.as_secs()
                    )));
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        let handle = Handle {
            driver: "helm".into(),
            data: json!({"release": release.name, "namespace": release.namespace,
                         "deployment": key.deployment_id, "component": key.component,
                         "spec": digest, "objects": applied}),
        };
        self.keep_record(key, &handle)?;
        Ok(handle)
    }

    async fn inspect(&self, key: &InstanceKey) -> Health {
        let Some(handle) = self.record(key) else {
            return Health::Unknown;
        };
        match self.ready(&applied_of(&handle)).await {
            Ok(true) => Health::Running,
            Ok(false) => Health::Failed {
                reason: "its workloads are not ready".into(),
            },
            Err(e) => Health::Failed {
                reason: e.to_string(),
            },
        }
    }

    async fn remove(&self, key: &InstanceKey) -> Result<(), DriverError> {
        match self.record(key) {
            Some(handle) => self.delete(key, &handle).await,
            None => Ok(()),
        }
    }

    async fn recover(
        &self,
        key: &InstanceKey,
        spec: &ComponentSpec,
        handle: &Handle,
    ) -> Result<Handle, DriverError> {
        // Objects in a cluster outlive the EN: applying the same spec again changes nothing
        // there (server-side apply of the same fields) and brings the record back.
        let _ = handle;
        self.apply(key, spec).await
    }

    async fn prune(&self, keep: &[InstanceKey]) -> Result<Vec<InstanceKey>, DriverError> {
        let mut removed = Vec::new();
        let Ok(deployments) = std::fs::read_dir(&self.root) else {
            return Ok(removed);
        };
        for deployment in deployments.flatten() {
            let Ok(components) = std::fs::read_dir(deployment.path()) else {
                continue;
            };
            for component in components.flatten() {
                let Some(handle) = std::fs::read(component.path())
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Handle>(&b).ok())
                else {
                    continue;
                };
                let key = InstanceKey {
                    deployment_id: handle.data["deployment"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    component: handle.data["component"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                };
                if !keep.contains(&key) {
                    self.delete(&key, &handle).await?;
                    removed.push(key);
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(deployment: &str, component: &str) -> InstanceKey {
        InstanceKey {
            deployment_id: deployment.into(),
            component: component.into(),
        }
    }

    #[test]
    fn release_names_fit_helm_and_never_collide() {
        assert_eq!(release_name(&key("d1", "Web_UI")), "eos-d1-web-ui");
        let id = "322df31a-aa6d-458f-81d4-c4d232227ab8";
        let a = release_name(&key(id, "database-primary"));
        let b = release_name(&key(id, "database-replica"));
        assert!(a.len() <= 53 && b.len() <= 53, "{a} {b}");
        assert_ne!(a, b, "cut to the same prefix, told apart by the digest");
        assert!(a.starts_with("eos-322df31a"), "{a}");
    }
}
