//! The site's state (desired, actual, nodes, operations in flight) and the reconciler that
//! turns their difference into commands for ENs. Only a confirmed EN result changes actual state;
//! a failure is retried with exponential backoff.

use crate::outbox::{Outbox, Report};
use eos_adapter_grpc::pb::{self, lo_command};
use eos_adapter_grpc::spec_to_json;
use eos_adapter_localstore::RecordDir;
use eos_domain::diff::{Operation, diff, place_component};
use eos_domain::ids::{DeploymentId, DeviceId, SiteId};
use eos_domain::layout::SiteDesiredState;
use eos_domain::margo::DeviceCapabilities;
use eos_domain::margo::status::{
    ComponentStatus, DeploymentState, DeploymentStatus, OverallStatus, StatusError,
};
use eos_domain::placement::{Candidate, place};
use eos_domain::state::{AppInstance, ComponentSpec, DeviceWorkloads, instance_of};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc, watch};

type Key = (DeviceId, DeploymentId, String);

/// Components an EN is restarting after a crash: deployment, component, why.
pub type Crashed = Vec<(DeploymentId, String, String)>;

pub struct Node {
    pub capabilities: DeviceCapabilities,
    pub online: bool,
    pub commands: Option<mpsc::Sender<Result<pb::LoCommand, tonic::Status>>>,
    /// From the latest heartbeat, stamped with when it came.
    pub usage: Option<pb::NodeUsage>,
}

struct Failure {
    error: String,
    attempts: u32,
    retry_at: Instant,
}

#[derive(Default)]
struct State {
    desired: Option<(String, SiteDesiredState)>,
    actual: BTreeMap<DeviceId, DeviceWorkloads>,
    nodes: BTreeMap<DeviceId, Node>,
    inflight: HashMap<Key, u64>,
    failures: HashMap<Key, Failure>,
    /// Components that crashed and that their EN is restarting, with the reason.
    crashed: HashMap<Key, String>,
    /// The last status sent per deployment and device, to send only changes (in memory: after a
    /// restart every status goes once more, which the CO takes as a no-op).
    reported: HashMap<(DeploymentId, String), String>,
    /// Every deployment-on-device the CO has been told about and not yet told is gone. Stored
    /// durably, before the first report of a new pair is queued, so that after a restart the LO
    /// still sends `removed` for a pair it no longer runs (a workload that moved meanwhile).
    announced: BTreeSet<(DeploymentId, String)>,
    /// Where each deployment was last placed. When an EN that lost a workload to another comes
    /// back still running it, the workload stays where it moved and the stale copy goes.
    placed: HashMap<DeploymentId, DeviceId>,
    /// After a restart, until every EN that ran something has said hello again or this passes,
    /// the LO neither places nor reports: an EN that has not rejoined yet is not offline, and
    /// moving its workloads would only churn them.
    settling_until: Option<Instant>,
    next_op: u64,
}

pub struct Site {
    pub id: SiteId,
    clock: Arc<dyn eos_app_common::Clock>,
    records: RecordDir,
    state: Mutex<State>,
    pub outbox: Arc<Outbox>,
    /// The site's revoked ENs.
    pub revocations: crate::revocation::Revocations,
    pub wake: Notify,
    /// Questions from the CO passed on to ENs.
    pub inspections: crate::inspect::Inspections,
}

const DESIRED: &str = "desired";
const ACTUAL: &str = "actual";
const ANNOUNCED: &str = "announced";
const HISTORY: &str = "history";
/// How many accepted desired states the history keeps.
pub const HISTORY_LEN: usize = 100;

/// One accepted desired state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HistoryEntry {
    pub commit: String,
    pub manifest_version: u64,
    /// Commits after the previous accepted one that were never applied (the site was cut off
    /// while they came and went; the newest wins).
    pub skipped: Vec<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct DesiredRecord {
    commit: String,
    files: eos_domain::layout::SiteFiles,
}

impl Site {
    /// Opens the site's local store: the last good desired state and the confirmed actual state.
    /// ENs that ran something get `settle` to say hello again before the LO acts.
    pub fn open(
        id: SiteId,
        records: RecordDir,
        outbox: Arc<Outbox>,
        settle: Duration,
        clock: Arc<dyn eos_app_common::Clock>,
    ) -> anyhow::Result<Self> {
        let mut state = State {
            actual: records.load(ACTUAL)?.unwrap_or_default(),
            announced: records.load(ANNOUNCED)?.unwrap_or_default(),
            settling_until: Some(Instant::now() + settle),
            ..Default::default()
        };
        if let Some(r) = records.load::<DesiredRecord>(DESIRED)? {
            let desired = SiteDesiredState::from_files(&id, &r.files)
                .map_err(|p| anyhow::anyhow!("stored desired state is invalid: {p}"))?;
            state.desired = Some((r.commit, desired));
        }
        Ok(Self {
            id,
            clock,
            revocations: crate::revocation::Revocations::open(records.clone())?,
            records,
            state: Mutex::new(state),
            outbox,
            wake: Notify::new(),
            inspections: Default::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a report for the CO (durably; never waits for the CO).
    pub fn send_up(&self, report: Report) {
        self.outbox.push(vec![report]);
    }

    pub fn desired_commit(&self) -> Option<(String, u64)> {
        self.lock()
            .desired
            .as_ref()
            .map(|(c, d)| (c.clone(), d.manifest_version))
    }

    /// The package artifacts the current desired state names: all an EN of the site may ask
    /// the LO for.
    pub fn desired_artifacts(&self) -> std::collections::BTreeSet<String> {
        self.lock()
            .desired
            .as_ref()
            .map(|(_, d)| crate::artifacts::artifacts_of(d))
            .unwrap_or_default()
    }

    /// Accepts a validated desired state, durably, then reconciles.
    pub fn accept_desired(
        &self,
        commit: String,
        files: eos_domain::layout::SiteFiles,
        desired: SiteDesiredState,
    ) -> anyhow::Result<()> {
        self.records.store(
            DESIRED,
            &DesiredRecord {
                commit: commit.clone(),
                files,
            },
        )?;
        self.lock().desired = Some((commit, desired));
        self.wake.notify_one();
        Ok(())
    }

    /// Records an accepted desired state and the commits it skipped (newest wins), durably, in
    /// the site's history of the last [`HISTORY_LEN`] accepted commits.
    pub fn record_history(&self, entry: HistoryEntry) -> anyhow::Result<()> {
        let mut history = self.history()?;
        history.push(entry);
        let excess = history.len().saturating_sub(HISTORY_LEN);
        history.drain(..excess);
        self.records.store(HISTORY, &history)?;
        Ok(())
    }

    /// The accepted desired states, oldest first.
    pub fn history(&self) -> anyhow::Result<Vec<HistoryEntry>> {
        Ok(self.records.load(HISTORY)?.unwrap_or_default())
    }

    /// The statuses last queued for the CO, one per deployment and device (removed ones gone).
    pub fn statuses(&self) -> Vec<DeploymentStatus> {
        self.lock()
            .reported
            .values()
            .filter_map(|json| DeploymentStatus::from_json(json).ok())
            .collect()
    }

    /// Every EN the LO has heard of since it started, and whether it is online.
    pub fn nodes(&self) -> Vec<(DeviceId, bool)> {
        self.lock()
            .nodes
            .iter()
            .map(|(id, n)| (id.clone(), n.online))
            .collect()
    }

    /// An EN's heartbeat: its resource use, kept for the LO's heartbeats to the CO.
    pub fn heartbeat(&self, device: &DeviceId, beat: &pb::Heartbeat) {
        let observed_at = self.clock.now_rfc3339();
        if let Some(node) = self.lock().nodes.get_mut(device) {
            node.usage = Some(pb::NodeUsage {
                device_id: device.to_string(),
                cpu_load_1m: beat.cpu_load_1m,
                memory_used_bytes: beat.memory_used_bytes,
                memory_total_bytes: beat.memory_total_bytes,
                workloads: beat.running,
                observed_at,
            });
        }
    }

    /// The latest resource use of every online EN.
    pub fn usage(&self) -> Vec<pb::NodeUsage> {
        self.lock()
            .nodes
            .values()
            .filter(|n| n.online)
            .filter_map(|n| n.usage.clone())
            .collect()
    }

    /// Where commands for an online EN go.
    pub fn node_commands(
        &self,
        device: &DeviceId,
    ) -> Option<mpsc::Sender<Result<pb::LoCommand, tonic::Status>>> {
        self.lock()
            .nodes
            .get(device)
            .filter(|n| n.online)
            .and_then(|n| n.commands.clone())
    }

    /// A fresh op id for a command to an EN.
    pub fn next_op(&self) -> u64 {
        let mut s = self.lock();
        s.next_op += 1;
        s.next_op
    }

    /// How many ENs are online now.
    pub fn online_nodes(&self) -> usize {
        self.lock().nodes.values().filter(|n| n.online).count()
    }

    /// An EN said hello: it is online, and what it runs is its actual state.
    pub fn node_joined(
        &self,
        device: DeviceId,
        capabilities: DeviceCapabilities,
        running: DeviceWorkloads,
        crashed: Crashed,
        commands: mpsc::Sender<Result<pb::LoCommand, tonic::Status>>,
    ) {
        self.send_up(device_report(&device, &capabilities, true));
        let mut s = self.lock();
        // The EN knows its components, not which application they belong to: that comes from
        // the desired state, or from what the LO knew of the device before. Left unknown, the
        // app would differ from the desired one and be redeployed from scratch.
        let mut running = running;
        for (id, app) in running.iter_mut() {
            let known = s
                .desired
                .as_ref()
                .and_then(|(_, d)| d.deployments.get(id))
                .map(|d| d.spec.application_id.clone())
                .or_else(|| {
                    s.actual
                        .get(&device)
                        .and_then(|apps| apps.get(id))
                        .map(|a| a.app_id.clone())
                });
            if let Some(app_id) = known {
                app.app_id = app_id;
            }
        }
        s.actual.insert(device.clone(), running);
        s.inflight.retain(|k, _| k.0 != device);
        s.crashed.retain(|k, _| k.0 != device);
        for (deployment, component, error) in crashed {
            s.crashed
                .insert((device.clone(), deployment, component), error);
        }
        s.nodes.insert(
            device,
            Node {
                capabilities,
                online: true,
                commands: Some(commands),
                usage: None,
            },
        );
        let _ = self.records.store(ACTUAL, &s.actual);
        drop(s);
        self.wake.notify_one();
    }

    /// The session that sends on `commands` ended: the node is offline, unless a newer session
    /// of the same node has replaced it already; `report` queues the change for the CO. Says
    /// whether the node went offline.
    pub fn node_left(
        &self,
        device: &DeviceId,
        commands: &mpsc::Sender<Result<pb::LoCommand, tonic::Status>>,
        report: bool,
    ) -> bool {
        let mut s = self.lock();
        let Some(n) = s.nodes.get_mut(device).filter(|n| {
            n.commands
                .as_ref()
                .is_some_and(|c| c.same_channel(commands))
        }) else {
            return false;
        };
        n.online = false;
        n.commands = None;
        let change = device_report(device, &n.capabilities, false);
        drop(s);
        if report {
            self.send_up(change);
            self.wake.notify_one();
        }
        true
    }

    /// The node's runtimes changed (its fingerprint): placement sees its new capabilities at
    /// once, and the CO with the next report. Ignored from a session a newer one replaced.
    pub fn capabilities_changed(
        &self,
        device: &DeviceId,
        commands: &mpsc::Sender<Result<pb::LoCommand, tonic::Status>>,
        capabilities: DeviceCapabilities,
    ) {
        let mut s = self.lock();
        let Some(n) = s.nodes.get_mut(device).filter(|n| {
            n.commands
                .as_ref()
                .is_some_and(|c| c.same_channel(commands))
        }) else {
            return;
        };
        n.capabilities = capabilities;
        let change = device_report(device, &n.capabilities, n.online);
        drop(s);
        tracing::info!(device_id = %device, "en capabilities changed");
        self.send_up(change);
        self.wake.notify_one();
    }

    /// The EN's supervisor saw a component crash (`failed`: it restarts it) or run again
    /// (`installed`). A crash is an event for the CO's log of the site, kept even when the
    /// restart's status supersedes the crash's in the outbox.
    pub fn observed(&self, device: &DeviceId, seen: pb::ComponentObserved) {
        let Ok(deployment) = DeploymentId::parse(&seen.deployment_id) else {
            return;
        };
        let key = (device.clone(), deployment, seen.component.clone());
        let mut s = self.lock();
        if seen.state == "installed" {
            if s.crashed.remove(&key).is_some() {
                tracing::info!(device_id = %device, deployment_id = %key.1, component = %key.2, restarts = seen.restarts, "component runs again");
            }
        } else {
            tracing::warn!(device_id = %device, deployment_id = %key.1, component = %key.2, error = %seen.error, "component crashed");
            s.crashed.insert(key, seen.error.clone());
            drop(s);
            self.send_up(Report::Component {
                kind: eos_domain::service::event_kind::COMPONENT_CRASHED.into(),
                device_id: device.to_string(),
                deployment_id: seen.deployment_id,
                component: seen.component,
                message: seen.error,
            });
        }
        self.wake.notify_one();
    }

    /// A confirmed (or failed) result from an EN.
    pub fn result(&self, device: &DeviceId, r: pb::ComponentResult) {
        let Ok(deployment) = DeploymentId::parse(&r.deployment_id) else {
            return;
        };
        let key = (device.clone(), deployment.clone(), r.component.clone());
        let mut s = self.lock();
        match r.state.as_str() {
            "installing" | "removing" => return,
            "installed" => {
                let Ok(spec) = eos_adapter_grpc::spec_from_json(&r.spec_json) else {
                    return;
                };
                let position = desired_position(&s, &deployment, &spec.name);
                let app_id = s
                    .desired
                    .as_ref()
                    .and_then(|(_, d)| d.deployments.get(&deployment))
                    .map(|d| d.spec.application_id.clone())
                    .unwrap_or_default();
                let apps = s.actual.entry(device.clone()).or_default();
                let app = apps
                    .entry(deployment.clone())
                    .or_insert_with(|| AppInstance {
                        app_id,
                        components: Vec::new(),
                    });
                place_component(app, position, spec);
                s.failures.remove(&key);
                s.crashed.remove(&key);
            }
            "removed" => {
                if let Some(apps) = s.actual.get_mut(device) {
                    if let Some(app) = apps.get_mut(&deployment) {
                        app.components.retain(|c| c.name != r.component);
                    }
                    apps.retain(|_, a| !a.components.is_empty());
                }
                s.failures.remove(&key);
                s.crashed.remove(&key);
            }
            _ => {
                let attempts = s.failures.get(&key).map_or(0, |f| f.attempts) + 1;
                let delay = Duration::from_millis(500u64.saturating_mul(1 << attempts.min(6)));
                tracing::warn!(device_id = %device, deployment_id = %deployment, component = %r.component, attempts, error = %r.error, "operation failed; retrying in {delay:?}");
                s.failures.insert(
                    key.clone(),
                    Failure {
                        error: r.error,
                        attempts,
                        retry_at: Instant::now() + delay,
                    },
                );
                tokio::spawn(wake_after(delay));
            }
        }
        s.inflight.remove(&key);
        let _ = self.records.store(ACTUAL, &s.actual);
        drop(s);
        self.wake.notify_one();
    }

    /// One pass: place, diff, send commands, report statuses that changed.
    pub fn reconcile_once(&self) {
        let mut s = self.lock();
        if let Some(until) = s.settling_until {
            let all_back = s
                .actual
                .iter()
                .filter(|(_, apps)| !apps.is_empty())
                .all(|(d, _)| s.nodes.get(d).is_some_and(|n| n.online));
            if !all_back && Instant::now() < until {
                return;
            }
            s.settling_until = None;
        }
        let Some((_, desired)) = s.desired.clone() else {
            return;
        };
        let mut wanted: BTreeMap<DeviceId, DeviceWorkloads> = BTreeMap::new();
        let mut unplaced = Vec::new();
        let mut load: HashMap<DeviceId, usize> = HashMap::new();
        for (id, deployment) in &desired.deployments {
            let candidates: Vec<Candidate> = s
                .nodes
                .iter()
                .map(|(d, n)| Candidate {
                    device: d.clone(),
                    capabilities: n.capabilities.clone(),
                    online: n.online,
                    schedule: desired.meta.schedule(d.host().as_str()),
                    load: *load.get(d).unwrap_or(&0),
                })
                .collect();
            let current = s.placed.get(id).cloned().or_else(|| {
                s.actual
                    .iter()
                    .find(|(_, apps)| apps.contains_key(id))
                    .map(|(d, _)| d.clone())
            });
            let placement = place(deployment, &candidates, current.as_ref());
            match placement.chosen {
                Some(device) => {
                    s.placed.insert(id.clone(), device.clone());
                    *load.entry(device.clone()).or_default() += 1;
                    wanted
                        .entry(device)
                        .or_default()
                        .insert(id.clone(), instance_of(deployment));
                }
                None => unplaced.push((
                    id.clone(),
                    deployment
                        .spec
                        .deployment_profile
                        .components
                        .iter()
                        .map(|c| c.name.clone())
                        .collect::<Vec<_>>(),
                    placement.why_not_placeable(),
                )),
            }
        }
        s.placed
            .retain(|id, _| desired.deployments.contains_key(id));
        let devices: BTreeSet<DeviceId> = s.nodes.keys().chain(s.actual.keys()).cloned().collect();
        for device in &devices {
            let empty = DeviceWorkloads::new();
            let ops = diff(
                s.actual.get(device).unwrap_or(&empty),
                wanted.get(device).unwrap_or(&empty),
            );
            for op in ops {
                send_operation(&mut s, device, op);
            }
        }
        let mut statuses = Vec::new();
        for (device, apps) in &wanted {
            for (id, app) in apps {
                statuses.push(status_of(&s, device, id, app, desired.manifest_version));
            }
        }
        for (device, apps) in &s.actual {
            for (id, app) in apps
                .iter()
                .filter(|(id, _)| !wanted.get(device).is_some_and(|w| w.contains_key(*id)))
            {
                let components = app
                    .components
                    .iter()
                    .map(|c| ComponentStatus {
                        name: c.name.clone(),
                        state: DeploymentState::Removing,
                        error: None,
                    })
                    .collect();
                statuses.push(status(
                    id,
                    &device.to_string(),
                    desired.manifest_version,
                    components,
                    None,
                ));
            }
        }
        for (id, components, why) in unplaced {
            let error = StatusError {
                code: "not-placeable".into(),
                source: format!("{}/*", self.id),
                message: why,
            };
            let components = components
                .into_iter()
                .map(|name| ComponentStatus {
                    name,
                    state: DeploymentState::Failed,
                    error: None,
                })
                .collect();
            statuses.push(status(
                &id,
                &format!("{}/*", self.id),
                desired.manifest_version,
                components,
                Some(error),
            ));
        }
        let gone: Vec<(DeploymentId, String)> = s
            .announced
            .iter()
            .filter(|(id, dev)| {
                !statuses.iter().any(|st| {
                    st.deployment_id == id.as_str() && st.device_id.as_deref() == Some(dev)
                })
            })
            .cloned()
            .collect();
        for (id, dev) in &gone {
            s.reported.remove(&(id.clone(), dev.clone()));
            statuses.push(
                status(id, dev, desired.manifest_version, Vec::new(), None)
                    .with_state(DeploymentState::Removed),
            );
        }
        let mut reports = Vec::new();
        let mut announced_more = false;
        for st in statuses {
            let key = (
                DeploymentId::parse(&st.deployment_id).expect("ids come from parsed state"),
                st.device_id.clone().unwrap_or_default(),
            );
            let json = st.to_json();
            if st.status.state != DeploymentState::Removed && s.reported.get(&key) == Some(&json) {
                continue;
            }
            let outbox_key = format!("{}/{}", key.0, key.1);
            if st.status.state != DeploymentState::Removed {
                announced_more |= s.announced.insert(key.clone());
                s.reported.insert(key, json.clone());
            }
            reports.push(Report::Status {
                key: outbox_key,
                status_json: json,
            });
        }
        // New pairs are recorded before their reports are queued; pairs reported gone are
        // forgotten only after the `removed` report is durably queued.
        if announced_more && let Err(e) = self.records.store(ANNOUNCED, &s.announced) {
            tracing::error!(error = %e, "cannot store which statuses the co knows");
        }
        self.outbox.push(reports);
        if !gone.is_empty() {
            for key in &gone {
                s.announced.remove(key);
            }
            if let Err(e) = self.records.store(ANNOUNCED, &s.announced) {
                tracing::error!(error = %e, "cannot store which statuses the co knows");
            }
        }
    }
}

trait WithState {
    fn with_state(self, state: DeploymentState) -> Self;
}

impl WithState for DeploymentStatus {
    fn with_state(mut self, state: DeploymentState) -> Self {
        self.status.state = state;
        self
    }
}

fn status(
    id: &DeploymentId,
    device: &str,
    manifest_version: u64,
    components: Vec<ComponentStatus>,
    error: Option<StatusError>,
) -> DeploymentStatus {
    let state = if error.is_some() {
        DeploymentState::Failed
    } else {
        DeploymentState::overall(components.iter().map(|c| c.state))
            .unwrap_or(DeploymentState::Pending)
    };
    DeploymentStatus {
        deployment_id: id.to_string(),
        device_id: Some(device.to_owned()),
        adopted_manifest_version: Some(manifest_version),
        status: OverallStatus { state, error },
        components,
    }
}

fn status_of(
    s: &State,
    device: &DeviceId,
    id: &DeploymentId,
    want: &AppInstance,
    manifest_version: u64,
) -> DeploymentStatus {
    let have = s.actual.get(device).and_then(|a| a.get(id));
    let mut first_error = None;
    let components = want
        .components
        .iter()
        .map(|c| {
            let key = (device.clone(), id.clone(), c.name.clone());
            let (state, error) = if let Some(why) = s
                .crashed
                .get(&key)
                .filter(|_| have.and_then(|h| h.component(&c.name)).is_some())
            {
                let e = StatusError {
                    code: "crashed".into(),
                    source: c.name.clone(),
                    message: why.clone(),
                };
                first_error.get_or_insert(e.clone());
                (DeploymentState::Failed, Some(e))
            } else if have.and_then(|h| h.component(&c.name)) == Some(c) {
                (DeploymentState::Installed, None)
            } else if let Some(f) = s.failures.get(&key) {
                let e = StatusError {
                    code: "apply-failed".into(),
                    source: c.name.clone(),
                    message: f.error.clone(),
                };
                first_error.get_or_insert(e.clone());
                (DeploymentState::Failed, Some(e))
            } else if s.inflight.contains_key(&key) {
                (DeploymentState::Installing, None)
            } else {
                (DeploymentState::Pending, None)
            };
            ComponentStatus {
                name: c.name.clone(),
                state,
                error,
            }
        })
        .collect::<Vec<_>>();
    let mut st = status(id, &device.to_string(), manifest_version, components, None);
    st.status.error = first_error;
    st
}

fn desired_position(s: &State, deployment: &DeploymentId, component: &str) -> usize {
    s.desired
        .as_ref()
        .and_then(|(_, d)| d.deployments.get(deployment))
        .and_then(|d| {
            d.spec
                .deployment_profile
                .components
                .iter()
                .position(|c| c.name == component)
        })
        .unwrap_or(usize::MAX)
}

/// Sends the EN commands for one operation, skipping components in flight or backing off.
fn send_operation(s: &mut State, device: &DeviceId, op: Operation) {
    let deployment = op.deployment().clone();
    let (apply, remove): (Vec<ComponentSpec>, Vec<ComponentSpec>) = match op {
        Operation::AddApp { app, .. } => (app.components, Vec::new()),
        Operation::RemoveApp { app, .. } => {
            (Vec::new(), app.components.into_iter().rev().collect())
        }
        Operation::AddComponent { component, .. } => (vec![component], Vec::new()),
        Operation::UpdateComponent { to, .. } | Operation::ReplaceComponent { to, .. } => {
            (vec![to], Vec::new())
        }
        Operation::RemoveComponent { component, .. } => (Vec::new(), vec![component]),
    };
    let Some(tx) = s
        .nodes
        .get(device)
        .filter(|n| n.online)
        .and_then(|n| n.commands.clone())
    else {
        return;
    };
    let now = Instant::now();
    for (spec, removing) in remove
        .into_iter()
        .map(|c| (c, true))
        .chain(apply.into_iter().map(|c| (c, false)))
    {
        let key = (device.clone(), deployment.clone(), spec.name.clone());
        if s.inflight.contains_key(&key) || s.failures.get(&key).is_some_and(|f| f.retry_at > now) {
            continue;
        }
        s.next_op += 1;
        let op_id = s.next_op;
        let body = if removing {
            lo_command::Body::Remove(pb::RemoveComponent {
                deployment_id: deployment.to_string(),
                spec_json: spec_to_json(&spec),
            })
        } else {
            lo_command::Body::Apply(pb::ApplyComponent {
                deployment_id: deployment.to_string(),
                spec_json: spec_to_json(&spec),
            })
        };
        if tx
            .try_send(Ok(pb::LoCommand {
                op_id,
                body: Some(body),
            }))
            .is_ok()
        {
            s.inflight.insert(key, op_id);
        }
    }
}

fn device_report(id: &DeviceId, caps: &DeviceCapabilities, online: bool) -> Report {
    Report::Device {
        device_id: id.to_string(),
        capabilities_json: caps.to_json(),
        online,
    }
}

/// Wakes the reconcilers after `delay`, when a failed operation is due for its retry.
async fn wake_after(delay: Duration) {
    tokio::time::sleep(delay).await;
    RETRY.notify_waiters();
}

/// Retries due after a backoff wake every reconciler; the reconciler is cheap when nothing is due.
static RETRY: Notify = Notify::const_new();

/// Runs reconcile passes on every wake-up, on retry deadlines, and every few seconds.
pub async fn run_reconciler(site: std::sync::Arc<Site>, mut stop: watch::Receiver<bool>) {
    loop {
        site.reconcile_once();
        tokio::select! {
            _ = site.wake.notified() => {}
            _ = RETRY.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = eos_app_common::stopped(&mut stop) => return,
        }
    }
}
