//! Benchmark: how long the built-in drivers take to bring a workload up.
//!
//! - `oci`: from calling `apply` to the first HTTP answer of busybox httpd, against a raw
//!   `docker run -d` of the same image and command to its first answer. The two alternate in
//!   one run, so the ratio holds however busy the machine is. Both start asking once the
//!   container runs (`apply` is still waiting out its start window then; when it returns is
//!   reported too): a connection tried before the engine publishes the port stalls for a
//!   second in the kernel, which would measure the probe, not the driver.
//! - `wasm`: from `apply` to the module's first line of output (compile, instantiate, run), and
//!   what `apply` itself takes (it waits out a start window to catch modules that trap at once).
//!
//! Needs the test services (`bash config/services.sh`). Prints one JSON object.
//! Run: `cargo bench -p eos-tests --bench driver_startup` (`EOS_BENCH_ROUNDS`, default 10).

use eos_adapter_oci::OciDriver;
use eos_adapter_wasm::WasmDriver;
use eos_domain::state::ComponentSpec;
use eos_driver::{InstanceKey, RuntimeDriver};
use serde_json::json;
use std::time::{Duration, Instant};

const SOCKET: &str = "/var/run/docker.sock";
const COMMAND: &str = "exec httpd -f -p 80 -h /www";

fn image() -> String {
    let registry = std::env::var("EOS_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".into());
    format!("{registry}/eos-test/busybox:1.0.0")
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

/// One HTTP/1.0 request on a fresh connection; true once a status line comes back.
async fn answers(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
        let mut head = [0u8; 8];
        stream.read_exact(&mut head).await?;
        Ok::<bool, std::io::Error>(head.starts_with(b"HTTP/1."))
    };
    // A port the engine publishes may accept before the server inside listens: a connection
    // that hangs is dropped and asked again.
    matches!(
        tokio::time::timeout(Duration::from_millis(50), ask).await,
        Ok(Ok(true))
    )
}

/// Waits for the first HTTP answer on `port`, asking every 2 ms.
async fn serving(port: u16) {
    let give_up = Instant::now() + Duration::from_secs(60);
    while Instant::now() < give_up {
        if answers(port).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("nothing answered on port {port} within a minute");
}

async fn running(docker: &bollard::Docker, container: &str) -> bool {
    docker
        .inspect_container(container, None)
        .await
        .ok()
        .and_then(|c| c.state)
        .and_then(|s| s.running)
        .unwrap_or(false)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank]
}

fn summary(mut ms: Vec<f64>) -> serde_json::Value {
    ms.sort_by(f64::total_cmp);
    json!({
        "p50_ms": percentile(&ms, 0.5),
        "p95_ms": percentile(&ms, 0.95),
        "min_ms": ms[0],
    })
}

fn elapsed_ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

async fn docker_run(name: &str, port: u16) {
    let status = tokio::process::Command::new("docker")
        .args(["run", "-d", "--name", name, "-p"])
        .arg(format!("{port}:80"))
        .args([&image(), "sh", "-c", COMMAND])
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .expect("the docker CLI runs");
    assert!(status.success(), "docker run failed for {name}");
}

async fn docker_rm(name: &str) {
    let _ = tokio::process::Command::new("docker")
        .args(["rm", "-f", name])
        .stdout(std::process::Stdio::null())
        .status()
        .await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> anyhow::Result<()> {
    let rounds = eos_tests::bench::env_number("EOS_BENCH_ROUNDS", 10);
    let scope = format!("bench-{}", std::process::id());
    let oci = OciDriver::connect(SOCKET, &scope, Default::default())
        .await
        .map(std::sync::Arc::new)
        .map_err(|e| {
            anyhow::anyhow!("{e}: start the test services with `bash config/services.sh`")
        })?;
    let docker = bollard::Docker::connect_with_unix(SOCKET, 60, bollard::API_DEFAULT_VERSION)?
        .negotiate_version()
        .await?;
    let registry = image();
    let (repository, revision) = registry.rsplit_once(':').expect("a tagged image");

    // Both pull once before timing starts: the figures are for starting, not downloading.
    docker_run(&format!("{scope}-warm"), free_port()).await;
    docker_rm(&format!("{scope}-warm")).await;

    let (mut eos_ms, mut eos_apply_ms, mut raw_ms) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let port = free_port();
        let key = InstanceKey {
            deployment_id: format!("round-{round}"),
            component: "web".into(),
        };
        let spec = ComponentSpec {
            name: "web".into(),
            runtime: "oci".into(),
            repository: format!("oci://{repository}"),
            revision: revision.into(),
            app_version: "1.0.0".into(),
            parameters: Default::default(),
            settings: json!({"container": {"command": ["sh", "-c", COMMAND], "ports": [format!("{port}:80")]}}),
            signatures: None,
            workload: None,
        };
        let start = Instant::now();
        let applying = {
            let (oci, key) = (oci.clone(), key.clone());
            tokio::spawn(async move {
                let applied = oci.apply(&key, &spec).await;
                (applied, elapsed_ms(start))
            })
        };
        let container = oci.container_name(&key);
        while !running(&docker, &container).await {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        serving(port).await;
        eos_ms.push(elapsed_ms(start));
        let (applied, returned_ms) = applying.await?;
        applied?;
        eos_apply_ms.push(returned_ms);
        oci.remove(&key).await?;

        let port = free_port();
        let name = format!("{scope}-raw-{round}");
        let start = Instant::now();
        docker_run(&name, port).await;
        serving(port).await;
        raw_ms.push(elapsed_ms(start));
        docker_rm(&name).await;
    }

    let tmp = tempfile::tempdir()?;
    let module = eos_tests::repo_root().join("config/apps/hello-wasm/hello.wat");
    let wasm = WasmDriver::new(tmp.path())?;
    let (mut first_output_ms, mut apply_ms) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let key = InstanceKey {
            deployment_id: format!("round-{round}"),
            component: "hello".into(),
        };
        let spec = ComponentSpec {
            name: "hello".into(),
            runtime: "wasm".into(),
            repository: format!("file://{}", module.display()),
            revision: "1.0.0".into(),
            app_version: "1.0.0".into(),
            parameters: Default::default(),
            settings: Default::default(),
            signatures: None,
            workload: None,
        };
        let log = wasm.component_dir(&key).join("stdout.log");
        let start = Instant::now();
        let watcher = tokio::spawn(async move {
            loop {
                if std::fs::metadata(&log).is_ok_and(|m| m.len() > 0) {
                    return start.elapsed();
                }
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        });
        wasm.apply(&key, &spec).await?;
        apply_ms.push(elapsed_ms(start));
        first_output_ms.push(watcher.await?.as_secs_f64() * 1000.0);
        wasm.remove(&key).await?;
    }

    let eos_p50 = percentile(
        &{
            let mut v = eos_ms.clone();
            v.sort_by(f64::total_cmp);
            v
        },
        0.5,
    );
    let raw_p50 = percentile(
        &{
            let mut v = raw_ms.clone();
            v.sort_by(f64::total_cmp);
            v
        },
        0.5,
    );
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "bench": "driver_startup",
            "rounds": rounds,
            "oci_apply_to_serving": summary(eos_ms),
            "oci_apply_returns": summary(eos_apply_ms),
            "docker_run_to_serving": summary(raw_ms),
            "oci_over_docker_run_p50_ratio": eos_p50 / raw_p50,
            "wasm_apply_to_first_output": summary(first_output_ms),
            "wasm_apply_returns": summary(apply_ms),
        }))?
    );
    Ok(())
}
