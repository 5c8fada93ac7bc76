//! Bridging 2026-07-28 "input required" results to legacy clients.
//!
//! A modern upstream never sends server-to-client requests; it answers `tools/call` (and
//! `prompts/get`, `resources/read`) with an `InputRequiredResult` listing sampling,
//! elicitation or roots requests, and expects the request again with the answers. A legacy
//! client cannot read such a result, so for legacy sessions the gateway asks the client itself
//! — as ordinary server-to-client requests on the session — and retries upstream with the
//! answers, round after round, until the upstream completes.

use rmcp::ErrorData;
use rmcp::model::{InputRequest, InputRequiredResult, InputResponses};
use rmcp::service::{Peer, RoleServer};

/// Most `input_required` rounds driven for one request before giving up.
pub const MAX_ROUNDS: usize = 8;

/// Why the upstream keeps asking: reported when [`MAX_ROUNDS`] is exceeded.
pub fn too_many_rounds(server: &str) -> ErrorData {
    ErrorData::internal_error(
        format!("upstream {server:?} still required input after {MAX_ROUNDS} rounds; giving up"),
        None,
    )
}

fn client_error(what: &str, err: rmcp::ServiceError) -> ErrorData {
    match err {
        rmcp::ServiceError::McpError(e) => e,
        other => {
            ErrorData::internal_error(format!("the client could not answer {what}: {other}"), None)
        }
    }
}

fn to_value<T: serde::Serialize>(value: T) -> Result<serde_json::Value, ErrorData> {
    serde_json::to_value(value).map_err(|e| {
        ErrorData::internal_error(format!("cannot encode an input response: {e}"), None)
    })
}

/// Asks the legacy client `peer` every input request of `result`; returns the answers and
/// the state to send back upstream.
pub async fn fulfil(
    peer: &Peer<RoleServer>,
    result: InputRequiredResult,
) -> Result<(Option<InputResponses>, Option<String>), ErrorData> {
    let Some(requests) = result.input_requests else {
        return Ok((None, result.request_state));
    };
    let mut responses = InputResponses::new();
    for (key, request) in requests {
        let answer = match request {
            InputRequest::CreateMessage(r) => to_value(
                peer.create_message(r.params)
                    .await
                    .map_err(|e| client_error("a sampling request", e))?,
            )?,
            InputRequest::Elicitation(r) => to_value(
                peer.create_elicitation(r.params)
                    .await
                    .map_err(|e| client_error("an elicitation request", e))?,
            )?,
            InputRequest::ListRoots(_) => to_value(
                peer.list_roots()
                    .await
                    .map_err(|e| client_error("a roots/list request", e))?,
            )?,
            _ => {
                return Err(ErrorData::internal_error(
                    format!("upstream asked for input {key:?} of a kind this gateway cannot relay"),
                    None,
                ));
            }
        };
        responses.insert(key, answer);
    }
    Ok((Some(responses), result.request_state))
}
