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
