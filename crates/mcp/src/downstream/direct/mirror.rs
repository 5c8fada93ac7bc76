//! rmcp's checks of a stateless request, mirrored for the direct path: each passes only
//! what rmcp's own check passes too (rmcp keeps them private), so a request the direct path
//! takes is one rmcp would have served, and every refusal stays rmcp's.

use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};
use rmcp::model::{ClientRequest, ErrorCode, ServerJsonRpcMessage};

/// The protocol version this path serves; every other one goes to rmcp.
pub(super) const VERSION: &str = "2026-07-28";

/// A `Host` value or an allowed host, normalised as rmcp normalises them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Authority {
    host: String,
    port: Option<u16>,
}

impl Authority {
    /// An allowed-hosts entry: an authority, or else (`::1`) a bare host for any port.
    pub(super) fn allowed(value: &str) -> Option<Self> {
        let value = value.trim();
        if value.is_empty() {
            return None;
        }
        Self::parse(value).or_else(|| {
            Some(Self {
                host: value.trim_matches(['[', ']']).to_ascii_lowercase(),
                port: None,
            })
        })
    }

    pub(super) fn parse(value: &str) -> Option<Self> {
        let authority = http::uri::Authority::try_from(value.trim()).ok()?;
        Some(Self {
            host: authority
                .host()
                .trim_matches(['[', ']'])
                .to_ascii_lowercase(),
            port: authority.port_u16(),
        })
    }

    /// An allowed entry without a port allows every port (rmcp's rule).
    pub(super) fn allows(&self, host: &Authority) -> bool {
        self.host == host.host && self.port.is_none_or(|port| host.port == Some(port))
    }
}

/// What a plain request names: its method and, for the methods that carry one, the value
/// its `Mcp-Name` header must repeat.
pub(super) fn plain_method(request: &ClientRequest) -> Option<(&'static str, Option<&str>)> {
    Some(match request {
        ClientRequest::CallToolRequest(r) => ("tools/call", Some(r.params.name.as_ref())),
        ClientRequest::ListToolsRequest(_) => ("tools/list", None),
        ClientRequest::GetPromptRequest(r) => ("prompts/get", Some(r.params.name.as_str())),
        ClientRequest::ListPromptsRequest(_) => ("prompts/list", None),
        ClientRequest::ReadResourceRequest(r) => ("resources/read", Some(r.params.uri.as_str())),
        ClientRequest::ListResourcesRequest(_) => ("resources/list", None),
        ClientRequest::ListResourceTemplatesRequest(_) => ("resources/templates/list", None),
        _ => return None,
    })
}

/// The one value of a singleton header, as text; `None` when absent, repeated or not text.
pub(super) fn single<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value.to_str().ok()
}

/// Whether `Accept` plainly lists both media types rmcp requires (any quality parameter:
/// let rmcp weigh it).
pub(super) fn accepts_json_and_sse(headers: &HeaderMap) -> bool {
    let (mut json, mut sse) = (false, false);
    for value in headers.get_all(ACCEPT) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        for item in value.split(',') {
            let (essence, params) = item.split_once(';').unwrap_or((item, ""));
            if !params.trim().is_empty() {
                return false;
            }
            let essence = essence.trim();
            json |= essence.eq_ignore_ascii_case("application/json");
            sse |= essence.eq_ignore_ascii_case("text/event-stream");
        }
    }
    json && sse
}

pub(super) fn is_json(headers: &HeaderMap) -> bool {
    single(headers, CONTENT_TYPE.as_str()).is_some_and(|value| {
        let essence = value.split_once(';').map_or(value, |(essence, _)| essence);
        essence.trim().eq_ignore_ascii_case("application/json")
    })
}

/// rmcp's HTTP status for a stateless answer (`jsonrpc_http_status` in its tower service,
/// which is private): protocol refusals are 400, an unknown method 404, the rest 200.
pub(super) fn status_of(message: &ServerJsonRpcMessage) -> StatusCode {
    let ServerJsonRpcMessage::Error(error) = message else {
        return StatusCode::OK;
    };
    match error.error.code {
        ErrorCode::UNSUPPORTED_PROTOCOL_VERSION
        | ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY
        | ErrorCode::HEADER_MISMATCH => StatusCode::BAD_REQUEST,
        ErrorCode::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::{ErrorData, NumberOrString, ProtocolVersion};

    #[test]
    fn the_version_is_rmcps() {
        assert_eq!(VERSION, ProtocolVersion::V_2026_07_28.as_str());
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn hosts_match_as_rmcp_matches_them() {
        let allowed = Authority::parse("localhost").unwrap();
        assert!(allowed.allows(&Authority::parse("LOCALHOST:8080").unwrap()));
        let pinned = Authority::parse("127.0.0.1:9000").unwrap();
        assert!(pinned.allows(&Authority::parse("127.0.0.1:9000").unwrap()));
        assert!(!pinned.allows(&Authority::parse("127.0.0.1:9001").unwrap()));
        assert!(!pinned.allows(&Authority::parse("127.0.0.1").unwrap()));
        let v6 = Authority::allowed("::1").unwrap();
        assert!(v6.allows(&Authority::parse("[::1]:80").unwrap()));
        assert!(Authority::allowed(" ").is_none());
        assert!(Authority::parse("not a host").is_none());
    }

    #[test]
    fn accept_must_plainly_list_both_types() {
        let both = headers(&[("accept", "application/json, text/event-stream")]);
        assert!(accepts_json_and_sse(&both));
        let split = headers(&[
            ("accept", "application/json"),
            ("accept", "text/event-stream"),
        ]);
        assert!(accepts_json_and_sse(&split));
        assert!(!accepts_json_and_sse(&headers(&[(
            "accept",
            "application/json"
        )])));
        // A weight is rmcp's to judge (q=0 excludes a type).
        let weighted = headers(&[("accept", "application/json;q=0, text/event-stream")]);
        assert!(!accepts_json_and_sse(&weighted));
        assert!(!accepts_json_and_sse(&HeaderMap::new()));
    }

    #[test]
    fn singleton_headers_refuse_repeats() {
        let twice = headers(&[("mcp-method", "tools/call"), ("mcp-method", "tools/call")]);
        assert_eq!(single(&twice, "mcp-method"), None);
        let once = headers(&[("mcp-method", "tools/call")]);
        assert_eq!(single(&once, "mcp-method"), Some("tools/call"));
    }

    #[test]
    fn content_type_parameters_are_ignored() {
        assert!(is_json(&headers(&[(
            "content-type",
            "application/json; charset=utf-8"
        )])));
        assert!(!is_json(&headers(&[("content-type", "text/plain")])));
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn statuses_follow_rmcp() {
        let error = |code| {
            ServerJsonRpcMessage::error(
                ErrorData::new(code, "x", None),
                Some(NumberOrString::Number(1)),
            )
        };
        assert_eq!(
            status_of(&error(ErrorCode::METHOD_NOT_FOUND)),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status_of(&error(ErrorCode::HEADER_MISMATCH)),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(status_of(&error(ErrorCode::INVALID_PARAMS)), StatusCode::OK);
        let ok = ServerJsonRpcMessage::response(
            rmcp::model::ServerResult::empty(()),
            NumberOrString::Number(1),
        );
        assert_eq!(status_of(&ok), StatusCode::OK);
    }
}
