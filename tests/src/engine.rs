//! The test Docker engine seen from outside EOS: what a test checks is running, or left
//! behind after an undeploy.

/// The Docker engine the test services run, spoken to directly; `None` when none answers.
pub async fn docker_engine() -> Option<bollard::Docker> {
    bollard::Docker::connect_with_unix("/var/run/docker.sock", 30, bollard::API_DEFAULT_VERSION)
        .ok()?
        .negotiate_version()
        .await
        .ok()
}

/// Every container the test engine has, running or not; `None` when it does not answer.
pub async fn all_containers() -> Option<(bollard::Docker, Vec<bollard::models::ContainerSummary>)> {
    let docker = docker_engine().await?;
    let all = docker
        .list_containers(Some(
            bollard::query_parameters::ListContainersOptionsBuilder::default()
                .all(true)
                .build(),
        ))
        .await
        .ok()?;
    Some((docker, all))
}

/// The containers, networks and volumes whose names contain `part` (a deployment id: the
/// engine names of a component's objects carry it), as `kind name` lines. Panics when the
/// engine does not answer, so that an empty answer always means nothing is there.
pub async fn engine_objects(part: &str) -> Vec<String> {
    let (docker, containers) = all_containers()
        .await
        .expect("the test Docker engine answers (bash config/services.sh starts it)");
    let mut found: Vec<String> = containers
        .into_iter()
        .flat_map(|c| c.names.unwrap_or_default())
        .filter(|n| n.contains(part))
        .map(|n| format!("container {}", n.trim_start_matches('/')))
        .collect();
    let networks = docker
        .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
        .await
        .expect("the engine lists its networks");
    found.extend(
        networks
            .into_iter()
            .filter_map(|n| n.name)
            .filter(|n| n.contains(part))
            .map(|n| format!("network {n}")),
    );
    let volumes = docker
        .list_volumes(None::<bollard::query_parameters::ListVolumesOptions>)
        .await
        .expect("the engine lists its volumes");
    found.extend(
        volumes
            .volumes
            .unwrap_or_default()
            .into_iter()
            .filter(|v| v.name.contains(part))
            .map(|v| format!("volume {}", v.name)),
    );
    found.sort();
    found
}

/// The test engine's socket passed through another Unix socket that a test opens and closes:
/// an engine that comes up after the EN started, or goes away while it runs.
pub struct EngineSocket {
    path: std::path::PathBuf,
    accepting: Option<tokio::task::JoinHandle<()>>,
}

impl EngineSocket {
    /// A socket at `path` that nothing answers on yet.
    pub fn closed(path: &std::path::Path) -> Self {
        Self {
            path: path.to_owned(),
            accepting: None,
        }
    }

    /// Starts answering: each connection is carried to the test engine.
    pub fn open(&mut self) {
        self.close();
        let listener = tokio::net::UnixListener::bind(&self.path).expect("the socket binds");
        self.accepting = Some(tokio::spawn(async move {
            let mut carried = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                carried.spawn(async move {
                    if let Ok(mut engine) =
                        tokio::net::UnixStream::connect("/var/run/docker.sock").await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut engine).await;
                    }
                });
            }
        }));
    }

    /// Stops answering, and cuts the connections it carries.
    pub fn close(&mut self) {
        if let Some(accepting) = self.accepting.take() {
            accepting.abort();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for EngineSocket {
    fn drop(&mut self) {
        self.close();
    }
}
