//! Bridging a legacy upstream's server-to-client requests to 2026-07-28 clients.
//!
//! A 2026-07-28 client is stateless: the gateway cannot send it a sampling, elicitation or
//! roots request. When such a client calls a tool of a per-session upstream that speaks the
//! legacy protocol, the call runs on a connection of its own; each request the upstream sends
//! on it is returned to the client as an `input_required` result whose `requestState` names the
//! parked call. When the client retries with its `inputResponses`, the answers go to the
//! waiting upstream and the call continues — possibly round after round — until it completes.
//! Parked calls live in this replica's memory, are bounded in number and expire.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::ErrorData;
use rmcp::model::{
    ClientCapabilities, ClientRequest, InputRequest, InputRequests, InputRequiredResult,
    InputResponses, ServerResult,
};
use serde::de::DeserializeOwned;
use serde_json::Value;
use switchboard_domain::tenancy::SessionOwner;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::catalog::Route;
use crate::error::GatewayError;
use crate::session::{Downstream, open_link};
use crate::upstream::{Upstream, client_info};

/// `requestState` values issued by the bridge start with this.
pub const STATE_PREFIX: &str = "switchboard-bridge:";
/// Most calls parked at once; the oldest is dropped beyond that.
const MAX_PARKED: usize = 1024;
/// A parked call not resumed within this time is dropped (its upstream call then fails).
const PARK_TTL: Duration = Duration::from_secs(120);
/// Input requests arriving this close together are returned in one round.
const GATHER: Duration = Duration::from_millis(20);

enum Event {
    Input {
        request: InputRequest,
        answer: oneshot::Sender<Value>,
    },
    Done(Result<ServerResult, GatewayError>),
}

/// Handed to the bridged connection's client handler: turns a server-to-client request into
/// an `input_required` round and waits for the client's answer.
#[derive(Clone)]
pub struct InputSender(mpsc::Sender<Event>);

impl InputSender {
    /// Asks the client `request` and returns its answer.
    pub async fn ask<T: DeserializeOwned>(&self, request: InputRequest) -> Result<T, ErrorData> {
        let gone =
            || ErrorData::internal_error("the client did not answer the input request", None);
        let (answer, answered) = oneshot::channel();
        self.0
            .send(Event::Input { request, answer })
            .await
            .map_err(|_| gone())?;
        let value = answered.await.map_err(|_| gone())?;
        serde_json::from_value(value).map_err(|e| {
            ErrorData::invalid_params(
                format!("the client's input response is malformed: {e}"),
                None,
            )
        })
    }
}

/// Whom a parked call belongs to: the upstream tool (a retry naming another tool cannot take
/// it over) and the caller who started it (the tenant is part of the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallOwner {
    pub route: Route,
    pub caller: SessionOwner,
}

struct Parked {
    owner: CallOwner,
    events: mpsc::Receiver<Event>,
    answers: HashMap<String, oneshot::Sender<Value>>,
    at: Instant,
}

/// What a bridged call produced for the client this round.
pub enum Outcome {
    Done(Box<ServerResult>),
    InputRequired(InputRequiredResult),
}

/// The parked bridged calls of this gateway.
#[derive(Default)]
pub struct Bridges {
    parked: Mutex<HashMap<String, Parked>>,
    next_key: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// True when the client declared a capability a server-to-client request could need.
pub fn client_can_answer(caps: Option<&ClientCapabilities>) -> bool {
    caps.is_some_and(|c| c.sampling.is_some() || c.elicitation.is_some() || c.roots.is_some())
}

impl Bridges {
    /// Starts `request` on a connection of its own to `upstream`, declaring `capabilities`.
    pub async fn start(
        &self,
        owner: CallOwner,
        upstream: Arc<Upstream>,
        request: ClientRequest,
        capabilities: ClientCapabilities,
        http: reqwest::Client,
        permits: Arc<Semaphore>,
    ) -> Result<Outcome, ErrorData> {
        let (events_tx, events) = mpsc::channel(8);
        let sender = InputSender(events_tx.clone());
        tokio::spawn(async move {
            let mut info = client_info();
            info.capabilities = capabilities;
            let generation = Arc::new(AtomicU64::new(0));
            let (_, link) = open_link(
                upstream.clone(),
                Downstream::Bridge(sender),
                info,
                generation,
                &http,
                &permits,
            )
            .await;
            let result = match link {
                Ok(link) => {
                    let result = upstream.request_on(&link.live, request).await;
                    link.close().await;
                    result
                }
                Err(reason) => Err(GatewayError::Unavailable {
                    server: upstream.name().to_owned(),
                    reason,
                }),
            };
            let _ = events_tx.send(Event::Done(result)).await;
        });
        self.drive(owner, events).await
    }

    /// Resumes the call parked under `state` with the client's `responses`.
    pub async fn resume(
        &self,
        owner: &CallOwner,
        state: &str,
        mut responses: InputResponses,
    ) -> Result<Outcome, ErrorData> {
        let parked = {
            let mut all = lock(&self.parked);
            match all.get(state) {
                Some(p) if p.owner == *owner => all.remove(state),
                _ => None,
            }
        };
        let parked = parked.ok_or_else(|| {
            ErrorData::invalid_params(
                "requestState names no waiting call of this tool (unknown, already used, expired or issued for another tool); call the tool again",
                None,
            )
        })?;
        for (key, answer) in parked.answers {
            let value = responses.remove(&key).ok_or_else(|| {
                ErrorData::invalid_params(
                    format!("inputResponses lacks the answer to {key:?}"),
                    None,
                )
            })?;
            let _ = answer.send(value);
        }
        self.drive(parked.owner, parked.events).await
    }

    async fn drive(
        &self,
        owner: CallOwner,
        mut events: mpsc::Receiver<Event>,
    ) -> Result<Outcome, ErrorData> {
        let first = events.recv().await.ok_or_else(|| {
            ErrorData::internal_error("the bridged upstream call ended without a result", None)
        })?;
        let mut requests = InputRequests::new();
        let mut answers = HashMap::new();
        let mut next = Some(first);
        while let Some(event) = next.take() {
            match event {
                Event::Done(result) => {
                    return result
                        .map(|r| Outcome::Done(Box::new(r)))
                        .map_err(ErrorData::from);
                }
                Event::Input { request, answer } => {
                    let key = format!("i{}", self.next_key.fetch_add(1, Ordering::Relaxed));
                    requests.insert(key.clone(), request);
                    answers.insert(key, answer);
                }
            }
            next = tokio::time::timeout(GATHER, events.recv())
                .await
                .ok()
                .flatten();
        }
        let state = format!("{STATE_PREFIX}{}", uuid::Uuid::new_v4().simple());
        self.park(
            state.clone(),
            Parked {
                owner,
                events,
                answers,
                at: Instant::now(),
            },
        );
        Ok(Outcome::InputRequired(InputRequiredResult::new(
            Some(requests),
            Some(state),
        )))
    }

    fn park(&self, state: String, parked: Parked) {
        let mut all = lock(&self.parked);
        let now = Instant::now();
        all.retain(|_, p| now.duration_since(p.at) < PARK_TTL);
        if all.len() >= MAX_PARKED
            && let Some(oldest) = all.iter().min_by_key(|(_, p)| p.at).map(|(k, _)| k.clone())
        {
            all.remove(&oldest);
        }
        all.insert(state, parked);
    }
}
