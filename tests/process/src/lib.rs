//! Runs an EOS binary as a real child process for tests: collects every line it writes, waits
//! for a line that matches, stops it with SIGTERM the way an init system would, and reads its
//! JSON log lines.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Default)]
struct Output {
    lines: Vec<(Stream, String)>,
    closed: usize,
}

/// A running binary. Dropping it kills the process (SIGKILL) so a failed test leaves nothing behind.
pub struct Daemon {
    child: Child,
    output: Arc<(Mutex<Output>, Condvar)>,
}

impl Daemon {
    /// Starts `command` with piped stdout and stderr.
    pub fn spawn(mut command: Command) -> Self {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let output = Arc::new((Mutex::new(Output::default()), Condvar::new()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        collect(stdout, Stream::Stdout, output.clone());
        collect(stderr, Stream::Stderr, output.clone());
        Self { child, output }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits until a line satisfies `matches` and returns it; panics with everything seen so far
    /// when `limit` passes or the process closes its output first.
    pub fn wait_for_line(&self, limit: Duration, matches: impl Fn(&str) -> bool) -> String {
        let (lock, ready) = &*self.output;
        let deadline = Instant::now() + limit;
        let mut out = lock.lock().unwrap();
        loop {
            if let Some((_, line)) = out.lines.iter().find(|(_, l)| matches(l)) {
                return line.clone();
            }
            let now = Instant::now();
            assert!(
                out.closed < 2 && now < deadline,
                "no matching line (process {}); output so far:\n{}",
                if out.closed == 2 {
                    "exited"
                } else {
                    "still running"
                },
                render(&out.lines)
            );
            out = ready.wait_timeout(out, deadline - now).unwrap().0;
        }
    }

    /// Sends SIGTERM and waits for the process to exit; returns its status and all its output.
    /// Panics if it is still running after `limit` (a hang on shutdown is a defect).
    pub fn terminate(mut self, limit: Duration) -> (ExitStatus, Vec<(Stream, String)>) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "cannot signal {pid}");
        let status = self.wait(limit);
        (status, self.lines())
    }

    /// Stops the process with SIGTERM and checks that it exits with success after logging its
    /// shutdown (an EOS daemon's contract); returns all its output.
    pub fn terminate_cleanly(self, limit: Duration) -> Vec<(Stream, String)> {
        let (status, lines) = self.terminate(limit);
        assert!(
            status.success(),
            "exit status {status:?}; output:\n{}",
            render(&lines)
        );
        assert!(
            lines
                .iter()
                .any(|(_, l)| l.contains("SIGTERM: shutting down")),
            "no shutdown line in:\n{}",
            render(&lines)
        );
        lines
    }

    /// Waits for the process to exit by itself within `limit`.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                // Let the reader threads drain what the process wrote last.
                let (lock, ready) = &*self.output;
                let mut out = lock.lock().unwrap();
                while out.closed < 2 && Instant::now() < deadline {
                    out = ready
                        .wait_timeout(out, Duration::from_millis(100))
                        .unwrap()
                        .0;
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process {} did not exit within {limit:?}; output:\n{}",
                self.child.id(),
                render(&self.lines())
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every line written so far.
    pub fn lines(&self) -> Vec<(Stream, String)> {
        self.output.0.lock().unwrap().lines.clone()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(
    stream: impl Read + Send + 'static,
    which: Stream,
    output: Arc<(Mutex<Output>, Condvar)>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let (lock, ready) = &*output;
            lock.lock().unwrap().lines.push((which, line));
            ready.notify_all();
        }
        let (lock, ready) = &*output;
        lock.lock().unwrap().closed += 1;
        ready.notify_all();
    });
}

fn render(lines: &[(Stream, String)]) -> String {
    lines
        .iter()
        .map(|(s, l)| format!("[{s:?}] {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A plain HTTP/1.1 GET over std's TCP (no client library): returns the status code and body.
/// `url` is `http://host:port/path`.
pub fn http_get(url: &str) -> std::io::Result<(u16, String)> {
    use std::io::Write;
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| std::io::Error::other(format!("not an http:// URL: {url}")))?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = std::net::TcpStream::connect(authority)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no HTTP status in {response:?}")))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Every stderr line parsed as a JSON log record (tracing's JSON lines, each with a `level`);
/// panics naming the first line that is not one, or when there is no log line at all.
pub fn json_logs(lines: &[(Stream, String)]) -> Vec<serde_json::Value> {
    let logs: Vec<serde_json::Value> = lines
        .iter()
        .filter(|(s, _)| *s == Stream::Stderr)
        .map(|(_, line)| {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
            assert!(v["level"].is_string(), "log line without a level: {line}");
            v
        })
        .collect();
    assert!(!logs.is_empty(), "no log lines at all");
    logs
}
