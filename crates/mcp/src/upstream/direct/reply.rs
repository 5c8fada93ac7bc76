//! Reading the reply of a direct call: a JSON body or an SSE stream (resumed with
//! `Last-Event-ID` when the upstream closes it early), with whatever else the stream carries
//! handled as rmcp's path handles it on a shared connection.

use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use rmcp::model::{
    ClientJsonRpcMessage, NumberOrString, RequestId, ServerJsonRpcMessage, ServerNotification,
};
use rmcp::transport::streamable_http_client::SseError;
use sse_stream::Sse;

use super::{Direct, Exchange, MAX_RESUME_DELAY, MAX_RESUMES, Plan};
use crate::error::GatewayError;
use crate::upstream::{Live, Upstream};

impl Upstream {
    /// Reads a reply stream until the reply, resuming it when the upstream closes it early.
    pub(super) async fn read_stream(
        &self,
        live: &Live,
        direct: &Direct,
        plan: &Plan,
        mut stream: BoxStream<'static, Result<Sse, SseError>>,
        id: &RequestId,
    ) -> Exchange {
        let mut last_event: Option<String> = None;
        let mut delay = Duration::ZERO;
        let mut resumes = 0;
        loop {
            while let Some(event) = stream.next().await {
                let event = event.map_err(|e| self.unavailable(format!("reply stream: {e}")))?;
                if let Some(event_id) = event.id {
                    last_event = Some(event_id);
                }
                if let Some(retry) = event.retry {
                    delay = Duration::from_millis(retry).min(MAX_RESUME_DELAY);
                }
                // Only `message` events (the default) carry JSON-RPC, as rmcp reads them.
                if event.event.as_deref().is_some_and(|kind| kind != "message") {
                    continue;
                }
                let data = match event.data {
                    Some(data) if !data.trim().is_empty() => data,
                    _ => continue,
                };
                let message = match serde_json::from_str::<ServerJsonRpcMessage>(&data) {
                    Ok(message) => message,
                    Err(err) => {
                        tracing::warn!(server = self.name(), %err, "upstream sent a message that is not JSON-RPC; ignored");
                        continue;
                    }
                };
                if let Some(result) = self.take_reply(live, direct, plan, message, id).await {
                    drain(stream);
                    return result;
                }
            }
            let Some(last) = last_event.clone() else {
                return Err(self.unavailable("the upstream closed the stream before answering"));
            };
            if resumes == MAX_RESUMES {
                return Err(self.unavailable(format!(
                    "the upstream closed the stream {} times before answering",
                    MAX_RESUMES + 1
                )));
            }
            resumes += 1;
            tokio::time::sleep(delay).await;
            stream = direct
                .resume(&plan.negotiated, last)
                .await
                .map_err(|e| self.unavailable(format!("resuming the reply stream: {e}")))?;
        }
    }

    /// The call's outcome when `message` is its reply; anything else the upstream sends is
    /// handled as rmcp's path handles it on a shared connection.
    pub(super) async fn take_reply(
        &self,
        live: &Live,
        direct: &Direct,
        plan: &Plan,
        message: ServerJsonRpcMessage,
        id: &RequestId,
    ) -> Option<Exchange> {
        match message {
            ServerJsonRpcMessage::Response(r) if same_id(&r.id, id) => Some(Ok(r.result)),
            // No id: the upstream could not read the request, which was ours.
            ServerJsonRpcMessage::Error(e) if e.id.as_ref().is_none_or(|e| same_id(e, id)) => {
                Some(Err(GatewayError::Upstream(e.error)))
            }
            ServerJsonRpcMessage::Response(_) | ServerJsonRpcMessage::Error(_) => {
                tracing::debug!(
                    server = self.name(),
                    "a reply to another request on a call's stream; ignored"
                );
                None
            }
            ServerJsonRpcMessage::Notification(n) => {
                // rmcp's client caches lists; a change seen here must not leave the re-listing
                // that follows reading the cache (rmcp's own path invalidates it too).
                if matches!(
                    n.notification,
                    ServerNotification::ToolListChangedNotification(_)
                        | ServerNotification::PromptListChangedNotification(_)
                        | ServerNotification::ResourceListChangedNotification(_)
                        | ServerNotification::ResourceUpdatedNotification(_)
                ) {
                    live.peer.clear_response_cache().await;
                }
                self.on_shared_notification(live.connection, n.notification)
                    .await;
                None
            }
            ServerJsonRpcMessage::Request(r) => {
                let reply = match self.answer_shared(&r.request) {
                    Ok(result) => ClientJsonRpcMessage::response(result, r.id),
                    Err(error) => ClientJsonRpcMessage::error(error, Some(r.id)),
                };
                let sent = direct
                    .post(&plan.negotiated, reply, plan.negotiated.headers.clone())
                    .await;
                if let Err(err) = sent {
                    let err = self.redact(err.to_string());
                    tracing::debug!(server = self.name(), %err, "could not answer the upstream's request");
                }
                None
            }
        }
    }
}

/// Reads what is left of a reply stream so its HTTP/1.1 connection goes back to the pool:
/// at once when the end is already in (the usual case), else in a task for up to 50 ms.
fn drain(mut stream: BoxStream<'static, Result<Sse, SseError>>) {
    use futures::FutureExt;
    loop {
        match stream.next().now_or_never() {
            Some(Some(_)) => continue,
            Some(None) => return,
            None => break,
        }
    }
    tokio::spawn(async move {
        let rest = async { while stream.next().await.is_some() {} };
        let _ = tokio::time::timeout(Duration::from_millis(50), rest).await;
    });
}

/// Whether a reply's id names our request; like rmcp, a numeric id echoed back as a string
/// counts.
fn same_id(reply: &RequestId, ours: &RequestId) -> bool {
    match (reply, ours) {
        (NumberOrString::String(text), NumberOrString::Number(n)) => {
            text.parse::<i64>().ok() == Some(*n)
        }
        _ => reply == ours,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::direct::FIRST_ID;

    #[test]
    fn a_numeric_id_echoed_as_a_string_is_ours() {
        let ours = RequestId::Number(FIRST_ID + 7);
        assert!(same_id(&ours, &ours));
        let echoed = NumberOrString::String(format!("{}", FIRST_ID + 7).into());
        assert!(same_id(&echoed, &ours));
        assert!(!same_id(&NumberOrString::String("7".into()), &ours));
        assert!(!same_id(&RequestId::Number(7), &ours));
    }
}
