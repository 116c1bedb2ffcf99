//! `GET /api/v1/events`: the CO's event log as server-sent events. Each event carries its
//! number as the SSE `id`, its kind as the SSE `event` and the record as JSON `data`. A client
//! resumes after the last number it saw (`Last-Event-ID`, which browsers send by themselves
//! when they reconnect, or `?after=`); without either it gets what happens from now on.
//! Filters: `kind` (a kind or its prefix: `deployment`, `deployment.status`) and `site`.

use crate::problem::{ApiError, ProblemDocument};
use crate::routes::Shared;
use crate::tenancy::TenantScope;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use eos_domain::ids::SiteId;
use eos_domain::service::{EventBell, EventFilter, EventRecord};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::broadcast;

/// How many events one read of the log takes.
const BATCH: u64 = 500;
/// How long a stream waits for the bell before it reads the log anyway.
const POLL: Duration = Duration::from_secs(2);
/// How many events the shared feed holds for a slow stream before that stream falls back to
/// reading the log.
const FEED: usize = 4096;

/// The bell the control plane rings after each commit that logged events; event streams wait
/// on it. Closing it ends every stream, so the server can shut down.
pub struct Bell {
    notify: tokio::sync::Notify,
    closed: AtomicBool,
    /// Every new event, read from the log once and handed to every stream.
    feed: broadcast::Sender<Arc<EventRecord>>,
    /// Set once the task that fills the feed runs.
    feeding: tokio::sync::OnceCell<()>,
}

impl Default for Bell {
    fn default() -> Self {
        Self {
            notify: Default::default(),
            closed: AtomicBool::new(false),
            feed: broadcast::channel(FEED).0,
            feeding: tokio::sync::OnceCell::new(),
        }
    }
}

impl Bell {
    /// Ends every event stream (at shutdown).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// A receiver of the shared feed; starts the one task that reads new events from the log
    /// after each ring (or every [`POLL`]) and sends them, so a thousand streams cost one read
    /// per commit, not a thousand.
    ///
    /// The feed starts after the newest event when the first stream subscribes; each stream
    /// reads the log up to now after subscribing, so an event is either in what it reads or
    /// in the feed.
    async fn subscribe(
        self: &Arc<Self>,
        control: &Shared,
    ) -> Result<broadcast::Receiver<Arc<EventRecord>>, ApiError> {
        let receiver = self.feed.subscribe();
        self.feeding
            .get_or_try_init(|| async {
                let after = control.last_event_id().await?;
                let (bell, control) = (self.clone(), control.clone());
                tokio::spawn(async move { bell.fill(control, after).await });
                Ok::<_, ApiError>(())
            })
            .await?;
        Ok(receiver)
    }

    async fn fill(&self, control: Shared, mut after: u64) {
        while !self.is_closed() {
            let rung = self.notify.notified();
            tokio::pin!(rung);
            rung.as_mut().enable();
            match control.feed_after(after, BATCH).await {
                Ok(events) if !events.is_empty() => {
                    for e in events {
                        after = e.id;
                        // No receiver is no error: streams come and go.
                        let _ = self.feed.send(Arc::new(e));
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read the event log"),
            }
            let _ = tokio::time::timeout(POLL, rung).await;
        }
    }
}

impl EventBell for Bell {
    fn ring(&self) {
        self.notify.notify_waiters();
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only events of this kind, or of kinds under it (`deployment` takes
    /// `deployment.created`, `deployment.status`, …).
    pub kind: Option<String>,
    /// Only events of this site.
    pub site: Option<String>,
    /// Only events about this app, deployment, device or site id.
    pub subject: Option<String>,
    /// Start after this event number (as `Last-Event-ID` does; 0 for the whole log).
    pub after: Option<u64>,
}

/// One event of the log, as each SSE message's `data` carries it.
#[derive(Serialize, utoipa::ToSchema, async_graphql::SimpleObject)]
pub struct ChangeEvent {
    /// Its number in the log: the SSE `id`.
    pub id: u64,
    /// `app.added`, `deployment.created`, `deployment.updated`, `deployment.removing`,
    /// `deployment.removed`, `deployment.status`, `device.joined`, `device.online`,
    /// `device.offline`, `site.connected`, `site.disconnected`, `site.event`,
    /// `tenant.created`, `tenant.signature_policy_set`, `user.added` or `user.removed`.
    pub kind: String,
    pub site: Option<String>,
    /// What it happened to: an app, deployment, device or site id.
    pub subject: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub created_at: String,
}

impl From<EventRecord> for ChangeEvent {
    fn from(e: EventRecord) -> Self {
        Self {
            id: e.id,
            kind: e.kind,
            site: e.site.map(|s| s.to_string()),
            subject: e.subject,
            data: e.data,
            created_at: e.created_at,
        }
    }
}

/// A deployment's history: the events about it, oldest first.
#[utoipa::path(get, path = "/api/v1/deployments/{deployment_id}/history", tag = "deployments", params(("deployment_id" = String, Path)), responses((status = 200, body = Vec<ChangeEvent>), (status = 404, body = ProblemDocument)))]
pub async fn deployment_history(
    State(state): State<(Shared, Arc<Bell>)>,
    TenantScope(tenant): TenantScope,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<axum::Json<Vec<ChangeEvent>>, ApiError> {
    let events = state.0.deployment_history(&tenant, &id).await?;
    Ok(axum::Json(events.into_iter().map(Into::into).collect()))
}

/// Server-sent events of the CO's event log, resumable by event number: the events of the
/// request's tenant only. Numbers are shared by all tenants, so a stream's numbers have gaps.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventsQuery, ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event number")), responses((status = 200, content_type = "text/event-stream", body = ChangeEvent, description = "A stream of events: `id` is the event's number, `event` its kind, `data` the event as JSON"), (status = 400, body = ProblemDocument)))]
pub async fn events(
    State((control, bell)): State<(Shared, Arc<Bell>)>,
    axum::Extension(caller): axum::Extension<crate::auth::Authenticated>,
    TenantScope(tenant): TenantScope,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    if let Some(kind) = &q.kind
        && (kind.is_empty()
            || !kind
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '.' || c == '-'))
    {
        return Err(ApiError::bad_request(format!(
            "kind {kind:?} is not an event kind"
        )));
    }
    let site = q
        .site
        .as_deref()
        .map(SiteId::parse)
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let resume = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::bad_request("Last-Event-ID is not an event number"))?,
        ),
        None => q.after,
    };
    let after = match resume {
        Some(n) => n,
        None => control.last_event_id().await?,
    };
    let filter = EventFilter {
        tenant,
        kind: q.kind,
        site,
        subject: q.subject,
    };
    // The stream ends within a few seconds of its caller's user being removed or demoted.
    let stream = follow(control.clone(), bell, filter, after)
        .await?
        .map(|e| Ok::<_, std::convert::Infallible>(message(e)))
        .take_until(crate::auth::revoked(control, caller));
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// The events of `filter` numbered above `after`, as they come: what the log holds, then what
/// the shared feed brings. Ends when the bell is closed (the CO shuts down). Server-sent events
/// and GraphQL subscriptions both read this.
pub(crate) async fn follow(
    control: Shared,
    bell: Arc<Bell>,
    filter: EventFilter,
    after: u64,
) -> Result<impl futures::Stream<Item = EventRecord> + Send + 'static, ApiError> {
    // Listen to the shared feed first, then catch up from the log: nothing falls between.
    let live = bell.subscribe(&control).await?;
    let state = Reader {
        after,
        buffer: VecDeque::new(),
        caught_up: false,
        live,
    };
    Ok(futures::stream::unfold(state, move |mut reader| {
        let (control, bell, filter) = (control.clone(), bell.clone(), filter.clone());
        async move {
            let e = reader.next(&control, &bell, &filter).await?;
            Some((e, reader))
        }
    }))
}

/// One stream's place: the last event number it sent, what it read ahead, and the shared feed.
struct Reader {
    after: u64,
    buffer: VecDeque<EventRecord>,
    /// Whether the log holds nothing after `after` that the feed may not bring.
    caught_up: bool,
    live: broadcast::Receiver<Arc<EventRecord>>,
}

impl Reader {
    /// The next event the stream wants; `None` once the bell is closed.
    async fn next(
        &mut self,
        control: &Shared,
        bell: &Bell,
        filter: &EventFilter,
    ) -> Option<EventRecord> {
        loop {
            if let Some(e) = self.buffer.pop_front() {
                self.after = e.id;
                return Some(e);
            }
            if bell.is_closed() {
                return None;
            }
            if !self.caught_up {
                // From the log, a batch at a time, until it has nothing newer.
                match control.events_after(self.after, filter, BATCH).await {
                    Ok(events) if !events.is_empty() => {
                        // Past events that do not match still move the place forward.
                        self.buffer.extend(events);
                        continue;
                    }
                    Ok(_) => self.caught_up = true,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the event log");
                        tokio::time::sleep(POLL).await;
                    }
                }
                continue;
            }
            let closing = bell.notify.notified();
            tokio::select! {
                received = self.live.recv() => match received {
                    Ok(e) if e.id > self.after => {
                        if filter.matches(&e) {
                            self.buffer.push_back((*e).clone());
                        } else {
                            self.after = e.id;
                        }
                    }
                    Ok(_) => {}
                    // Fell behind the feed: read what was missed from the log.
                    Err(broadcast::error::RecvError::Lagged(_)) => self.caught_up = false,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                // A ring or the close: look at the closed flag again.
                _ = closing => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

fn message(e: EventRecord) -> Event {
    let (id, kind) = (e.id, e.kind.clone());
    Event::default()
        .id(id.to_string())
        .event(kind)
        .json_data(ChangeEvent::from(e))
        .unwrap_or_else(|_| Event::default().comment("an event that did not serialize"))
}
