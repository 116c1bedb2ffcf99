//! Reading the CO's server-sent events in tests: a stream opened (for a tenant, from a number)
//! and read an event at a time.

use eos_tests::{Fleet, LIMIT};
use serde_json::Value;

/// One server-sent event: its id, its event name and its data.
#[derive(Debug, Clone)]
pub struct Sse {
    pub id: u64,
    pub event: String,
    pub data: Value,
}

/// An open event stream.
pub struct Stream {
    body: reqwest::Response,
    text: String,
}

impl Stream {
    pub async fn open(fleet: &Fleet, query: &str, last_event_id: Option<u64>) -> Self {
        Self::open_as(fleet, None, query, last_event_id).await
    }

    /// A stream of the events of `tenant` (the `EOS-Tenant` header; the default tenant's when
    /// `None`).
    pub async fn open_as(
        fleet: &Fleet,
        tenant: Option<&str>,
        query: &str,
        last_event_id: Option<u64>,
    ) -> Self {
        let mut request = fleet.http.get(fleet.url(&format!("/api/v1/events{query}")));
        if let Some(t) = tenant {
            request = request.header("EOS-Tenant", t);
        }
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let r = fleet.http.execute(request.build().unwrap()).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        Self {
            body: r,
            text: String::new(),
        }
    }

    /// The next event (comments and keep-alives skipped); fails after `LIMIT`.
    pub async fn next(&mut self) -> Sse {
        tokio::time::timeout(LIMIT, async {
            loop {
                if let Some(end) = self.text.find("\n\n") {
                    let block: String = self.text.drain(..end + 2).collect();
                    let field = |name: &str| {
                        block
                            .lines()
                            .find_map(|l| l.strip_prefix(&format!("{name}:")))
                            .map(|v| v.trim_start().to_owned())
                    };
                    let (Some(id), Some(event), Some(data)) =
                        (field("id"), field("event"), field("data"))
                    else {
                        continue;
                    };
                    return Sse {
                        id: id.parse().unwrap(),
                        event,
                        data: serde_json::from_str(&data).unwrap(),
                    };
                }
                let chunk = self
                    .body
                    .chunk()
                    .await
                    .unwrap()
                    .expect("the stream is open");
                self.text.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .expect("an event within the limit")
    }

    /// Events until one of kind `kind` about `subject` came, that one included.
    pub async fn until(&mut self, kind: &str, subject: &str) -> Vec<Sse> {
        let mut seen = Vec::new();
        loop {
            let e = self.next().await;
            let done = e.event == kind && e.data["subject"] == subject;
            seen.push(e);
            if done {
                return seen;
            }
        }
    }
}
