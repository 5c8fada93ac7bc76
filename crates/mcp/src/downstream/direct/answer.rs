//! The answer of a request on the direct path: the handler's future, polled where the
//! reply waits for it, and the reply's JSON body or SSE events.

use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::FutureExt;
use http::StatusCode;
use http::header::CONTENT_TYPE;
use rmcp::model::{
    ErrorData, ProgressNotification, ProgressNotificationParam, RequestId, ServerJsonRpcMessage,
    ServerNotification, ServerResult,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use switchboard_domain::tenancy::TenantId;

/// What a handler's future gives: its result, or the panic that ended it.
pub(super) type Outcome = Result<Result<ServerResult, ErrorData>, Box<dyn std::any::Any + Send>>;

/// The handler's answer to a request on this path, polled by the request's own task (no
/// task of its own, no wake-up of another). Dropped before it is ready — the client went
/// away — it cancels the call and lets it finish on a task of its own, so the call still
/// ends the way a cancelled one does (recorded, the upstream told).
pub(super) struct Answer {
    future: Option<futures::future::BoxFuture<'static, Outcome>>,
    cancel: CancellationToken,
    /// The caller's tenant, for the log line of a handler that panicked.
    tenant: Option<TenantId>,
}

impl Answer {
    pub(super) fn new(
        future: impl Future<Output = Result<ServerResult, ErrorData>> + Send + 'static,
        cancel: CancellationToken,
        tenant: Option<TenantId>,
    ) -> Self {
        // A panic in the handler answers this request with an internal error, as it does
        // on rmcp's path (where the handler runs on a task of its own).
        let future = std::panic::AssertUnwindSafe(future).catch_unwind().boxed();
        Self {
            future: Some(future),
            cancel,
            tenant,
        }
    }
}

fn log_panic(tenant: Option<&TenantId>, when: &str) {
    let tenant = tenant.map_or("-", TenantId::as_str);
    tracing::error!(tenant, "the handler of a stateless request panicked{when}");
}

impl Future for Answer {
    type Output = Outcome;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Outcome> {
        let future = self
            .future
            .as_mut()
            .expect("an Answer is not polled again once it has answered");
        let outcome = std::task::ready!(future.as_mut().poll(cx));
        self.future = None;
        if outcome.is_err() {
            log_panic(self.tenant.as_ref(), "");
        }
        std::task::Poll::Ready(outcome)
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        let Some(future) = self.future.take() else {
            return;
        };
        self.cancel.cancel();
        let tenant = self.tenant.take();
        // Outside a runtime (the process is ending) there is nothing left to finish it on.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if future.await.is_err() {
                    log_panic(tenant.as_ref(), " after its client left");
                }
            });
        }
    }
}

/// Progress notifications a reply holds before the handler waits for the client to read.
pub(super) const PROGRESS_BUFFER: usize = 64;

pub(super) fn answer_message(id: RequestId, answer: Outcome) -> ServerJsonRpcMessage {
    match answer {
        Ok(Ok(result)) => ServerJsonRpcMessage::response(result, id),
        Ok(Err(error)) => ServerJsonRpcMessage::error(error, Some(id)),
        // Logged where it was caught (see `Answer`).
        Err(_) => ServerJsonRpcMessage::error(
            ErrorData::internal_error("the gateway failed to answer this request", None),
            Some(id),
        ),
    }
}

pub(super) fn event(message: &ServerJsonRpcMessage) -> Result<Event, serde_json::Error> {
    Ok(Event::default().data(serde_json::to_string(message)?))
}

pub(super) fn progress_event(
    params: ProgressNotificationParam,
) -> Result<Event, serde_json::Error> {
    event(&ServerJsonRpcMessage::notification(
        ServerNotification::ProgressNotification(ProgressNotification::new(params)),
    ))
}

/// A streamed reply between its events: progress until the answer, then the answer.
pub(super) struct Streaming {
    id: RequestId,
    /// `None` once answered.
    answer: Option<Answer>,
    progress: mpsc::Receiver<ProgressNotificationParam>,
}

pub(super) type Events = Vec<Result<Event, serde_json::Error>>;

impl Streaming {
    /// A reply streamed from the first progress on: what follows it of `answer`'s progress,
    /// then the answer.
    pub(super) fn new(
        id: RequestId,
        answer: Answer,
        progress: mpsc::Receiver<ProgressNotificationParam>,
    ) -> Self {
        Self {
            id,
            answer: Some(answer),
            progress,
        }
    }

    pub(super) async fn next(mut self) -> Option<(Events, Self)> {
        let mut answer = self.answer.take()?;
        tokio::select! {
            biased;
            Some(params) = self.progress.recv() => {
                self.answer = Some(answer);
                Some((vec![progress_event(params)], self))
            }
            result = &mut answer => {
                let mut events = Events::new();
                while let Ok(params) = self.progress.try_recv() {
                    events.push(progress_event(params));
                }
                events.push(event(&answer_message(self.id.clone(), result)));
                Some((events, self))
            }
        }
    }
}

pub(super) fn json_response(status: StatusCode, message: &ServerJsonRpcMessage) -> Response {
    match serde_json::to_vec(message) {
        Ok(body) => (
            status,
            [(CONTENT_TYPE, "application/json")],
            Bytes::from(body),
        )
            .into_response(),
        Err(err) => {
            tracing::error!(%err, "could not serialise an answer");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
