//! `exec`: an example third-party runtime-driver plugin, built as a `cdylib` and loaded by the
//! EN from its plugin directory. Each component is a native process: `repository` is the
//! program (`file:///usr/bin/…`), `x-eos-extensions.exec.args` its arguments, Margo
//! parameters its environment. A pid file per component lets a restarted EN adopt a process
//! that is still running, and lets `prune` find one it never recorded.
//!
//! Stats give the process's resident memory; logs the tail of its stdout and stderr files.
//!
//! `x-eos-extensions.exec.panic: true` makes `apply` panic, to show that a panic inside a
//! plugin never reaches the EN.

use eos_domain::state::ComponentSpec;
use eos_driver::{DriverError, DriverInfo, Handle, Health, InstanceKey, Stats};
use eos_plugin_abi::BlockingDriver;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// How long `apply` watches a new process before calling it started.
const START_WINDOW: Duration = Duration::from_millis(300);

struct Running {
    pid: u32,
    /// Started by this driver (not adopted after a restart): it reaps the process.
    child: Option<Child>,
    spec: ComponentSpec,
}

pub struct ExecDriver {
    dir: PathBuf,
    running: Mutex<HashMap<InstanceKey, Running>>,
}

impl ExecDriver {
    fn folder(&self, key: &InstanceKey) -> PathBuf {
        self.dir.join(&key.deployment_id).join(&key.component)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<InstanceKey, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stop(&self, key: &InstanceKey) {
        let running = self.lock().remove(key);
        let pid = running
            .as_ref()
            .map(|r| r.pid)
            .or_else(|| read_pid(&self.folder(key)));
        if let Some(mut r) = running
            && let Some(child) = r.child.as_mut()
        {
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        if let Some(pid) = pid.filter(|p| alive(*p)) {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            for _ in 0..50 {
                if !alive(pid) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn program_of(spec: &ComponentSpec) -> Result<PathBuf, DriverError> {
    spec.repository
        .strip_prefix("file://")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .ok_or_else(|| DriverError::Fetch {
            repository: spec.repository.clone(),
            reason: "an exec component's repository is file:///absolute/program".into(),
        })
}

fn args_of(spec: &ComponentSpec) -> Vec<String> {
    spec.settings["exec"]["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect()
}

fn read_pid(folder: &Path) -> Option<u32> {
    std::fs::read_to_string(folder.join("pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether `pid` is a live process (not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(|r| r.trim().to_owned()))
        .is_some_and(|rest| !rest.starts_with('Z') && !rest.starts_with('X'))
}

/// The resident memory of `pid` (`VmRSS` in `/proc/PID/status`), in bytes.
fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The last `lines` lines of a file, oldest first.
fn tail(path: &Path, lines: usize) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| (*l).to_owned())
        .collect()
}

fn handle(pid: u32) -> Handle {
    Handle {
        driver: "exec".into(),
        data: serde_json::json!({ "pid": pid }),
    }
}

impl BlockingDriver for ExecDriver {
    fn info(&self) -> DriverInfo {
        DriverInfo {
            runtime: "exec".into(),
            source: "native".into(),
            version: format!("exec {}", env!("CARGO_PKG_VERSION")),
            deployment_types: vec!["custom".into()],
        }
    }

    fn apply(&self, key: &InstanceKey, spec: &ComponentSpec) -> Result<Handle, DriverError> {
        if spec.settings["exec"]["panic"] == true {
            panic!("asked to panic by x-eos-extensions.exec.panic");
        }
        if let Some(r) = self.lock().get_mut(key)
            && r.spec == *spec
            && alive(r.pid)
            && r.child
                .as_mut()
                .is_none_or(|c| c.try_wait().ok().flatten().is_none())
        {
            return Ok(handle(r.pid));
        }
        self.stop(key);
        let program = program_of(spec)?;
        let folder = self.folder(key);
        let io = |e: std::io::Error| DriverError::Other(format!("{}: {e}", folder.display()));
        std::fs::create_dir_all(&folder).map_err(io)?;
        let log = |name: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(folder.join(name))
        };
        let mut child = Command::new(&program)
            .args(args_of(spec))
            .envs(&spec.parameters)
            .stdin(Stdio::null())
            .stdout(log("stdout.log").map_err(io)?)
            .stderr(log("stderr.log").map_err(io)?)
            .spawn()
            .map_err(|e| DriverError::Start(format!("cannot run {}: {e}", program.display())))?;
        let pid = child.id();
        std::fs::write(folder.join("pid"), pid.to_string()).map_err(io)?;
        std::thread::sleep(START_WINDOW);
        if let Ok(Some(status)) = child.try_wait() {
            return Err(DriverError::Start(format!(
                "{} exited at start with {status}",
                program.display()
            )));
        }
        self.lock().insert(
            key.clone(),
            Running {
                pid,
                child: Some(child),
                spec: spec.clone(),
            },
        );
        Ok(handle(pid))
    }

    fn inspect(&self, key: &InstanceKey) -> Health {
        let mut running = self.lock();
        let Some(r) = running.get_mut(key) else {
            return Health::Unknown;
        };
        match r.child.as_mut() {
            Some(child) => match child.try_wait() {
                Ok(None) => Health::Running,
                Ok(Some(status)) => Health::Exited {
                    code: status.code().unwrap_or(-1),
                },
                Err(e) => Health::Failed {
                    reason: e.to_string(),
                },
            },
            None if alive(r.pid) => Health::Running,
            None => Health::Exited { code: -1 },
        }
    }

    fn remove(&self, key: &InstanceKey) -> Result<(), DriverError> {
        self.stop(key);
        let folder = self.folder(key);
        match std::fs::remove_dir_all(&folder) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(DriverError::Other(format!("{}: {e}", folder.display()))),
        }
        if let Some(parent) = folder.parent() {
            let _ = std::fs::remove_dir(parent);
        }
        Ok(())
    }

    fn recover(
        &self,
        key: &InstanceKey,
        spec: &ComponentSpec,
        handle: &Handle,
    ) -> Result<Handle, DriverError> {
        // The process outlived the EN: adopt it when it is still the one the handle names.
        let pid = handle.data["pid"]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok());
        let program = program_of(spec)?;
        let same = pid.filter(|p| alive(*p)).filter(|p| {
            std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|exe| exe == program)
                || std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.split('\0').next() == Some(&*program.to_string_lossy()))
        });
        match same {
            Some(pid) => {
                self.lock().insert(
                    key.clone(),
                    Running {
                        pid,
                        child: None,
                        spec: spec.clone(),
                    },
                );
                Ok(self::handle(pid))
            }
            None => self.apply(key, spec),
        }
    }

    fn stats(&self, key: &InstanceKey) -> Result<Stats, DriverError> {
        let pid = self.lock().get(key).map(|r| r.pid);
        Ok(Stats {
            cpu_percent: None,
            memory_bytes: pid.and_then(resident_bytes),
        })
    }

    fn logs(&self, key: &InstanceKey, lines: usize) -> Result<Vec<String>, DriverError> {
        let folder = self.folder(key);
        let mut out = tail(&folder.join("stdout.log"), lines);
        out.extend(
            tail(&folder.join("stderr.log"), lines)
                .into_iter()
                .map(|l| format!("stderr: {l}")),
        );
        Ok(out)
    }

    fn prune(&self, keep: &[InstanceKey]) -> Result<Vec<InstanceKey>, DriverError> {
        let mut removed = Vec::new();
        let Ok(deployments) = std::fs::read_dir(&self.dir) else {
            return Ok(removed);
        };
        for d in deployments.flatten() {
            let Ok(components) = std::fs::read_dir(d.path()) else {
                continue;
            };
            for c in components.flatten() {
                let key = InstanceKey {
                    deployment_id: d.file_name().to_string_lossy().into_owned(),
                    component: c.file_name().to_string_lossy().into_owned(),
                };
                if !keep.contains(&key) {
                    self.remove(&key)?;
                    removed.push(key);
                }
            }
        }
        Ok(removed)
    }
}

fn make(dir: &Path) -> Result<ExecDriver, DriverError> {
    Ok(ExecDriver {
        dir: dir.to_owned(),
        running: Mutex::new(HashMap::new()),
    })
}

#[cfg(not(feature = "other-abi"))]
eos_plugin_abi::export_driver!(make);

#[cfg(feature = "other-abi")]
eos_plugin_abi::export_driver!(make, eos_plugin_abi::DRIVER_ABI + 1000);
