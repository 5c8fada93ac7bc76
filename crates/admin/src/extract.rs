//! Request extractors whose refusals use the admin API's error shape: a JSON body
//! ([`Body`]) and a query string ([`Params`]). axum's own rejections are plain text.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest accepted request body.
pub const MAX_BODY: usize = 256 * 1024;

/// A JSON request body; unknown fields are refused by the types themselves.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(JsonRejection::JsonDataError(err)) => {
                let message = std::error::Error::source(&err)
                    .map_or_else(|| err.body_text(), ToString::to_string);
                Err(match field_of(&message) {
                    Some(field) => ApiError::invalid(field, message),
                    None => ApiError::invalid("body", message),
                })
            }
            Err(JsonRejection::JsonSyntaxError(err)) => Err(ApiError::bad_request(format!(
                "the body is not valid JSON: {}",
                std::error::Error::source(&err)
                    .map_or_else(|| err.body_text(), ToString::to_string)
            ))),
            Err(JsonRejection::MissingJsonContentType(_)) => {
                Err(ApiError::unsupported_media_type())
            }
            Err(JsonRejection::BytesRejection(_)) => Err(ApiError::too_large(MAX_BODY)),
            Err(other) => Err(ApiError::bad_request(other.body_text())),
        }
    }
}

/// The field a serde message names (`missing field \`name\``, `unknown field \`x\``, or a
/// path prefix `settings.rateLimits: …`).
fn field_of(message: &str) -> Option<String> {
    for marker in ["missing field `", "unknown field `"] {
        if let Some(rest) = message.split(marker).nth(1) {
            return rest.split('`').next().map(str::to_owned);
        }
    }
    let (path, _) = message.split_once(": ")?;
    let plausible = !path.is_empty()
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'[' || b == b']');
    plausible.then(|| path.to_owned())
}

/// A query string.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(err)) => {
                Err(ApiError::bad_request(format!(
                    "the query string is not valid: {}",
                    std::error::Error::source(&err)
                        .map_or_else(|| err.body_text(), ToString::to_string)
                )))
            }
            Err(other) => Err(ApiError::bad_request(other.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::field_of;

    #[test]
    fn serde_messages_name_their_field() {
        assert_eq!(
            field_of("missing field `name` at line 1 column 2").as_deref(),
            Some("name")
        );
        assert_eq!(
            field_of("unknown field `nmae`, expected one of `name`, `plan`").as_deref(),
            Some("nmae")
        );
        assert_eq!(
            field_of("invalid type: integer `3`, expected a string"),
            None
        );
    }
}
