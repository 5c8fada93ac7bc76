//! Cursor pagination: `?limit=&cursor=`, answered as `{"items": […], "nextCursor": …}`.
//!
//! A cursor is the sort key of the last item returned, base64url-encoded: opaque to clients,
//! stable under inserts and deletes (no offsets), and checked when decoded.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;

/// Items per page when the client does not say.
pub const DEFAULT_LIMIT: u32 = 100;
/// Most items per page.
pub const MAX_LIMIT: u32 = 1000;

/// The paging part of a list request.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    /// The page size, checked.
    pub fn limit(&self) -> Result<u32, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n @ 1..=MAX_LIMIT) => Ok(n),
            Some(n) => Err(ApiError::invalid(
                "limit",
                format!("limit {n} is out of range; use 1 to {MAX_LIMIT}"),
            )),
        }
    }

    /// The sort key after which the page starts.
    pub fn after(&self) -> Result<Option<String>, ApiError> {
        self.cursor.as_deref().map(decode).transpose()
    }
}

/// Encodes a sort key as a cursor.
pub fn encode(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

fn decode(cursor: &str) -> Result<String, ApiError> {
    let bad =
        || ApiError::bad_request("the cursor is not one this API returned; start over without it");
    if cursor.len() > 1024 {
        return Err(bad());
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    String::from_utf8(bytes).map_err(|_| bad())
}

/// One page of items already sorted by `key`, and the cursor of the next page.
pub fn slice<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> &str,
    query: &PageQuery,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let limit = query.limit()? as usize;
    let after = query.after()?;
    let mut page: Vec<T> = items
        .into_iter()
        .filter(|item| after.as_deref().is_none_or(|a| key(item) > a))
        .take(limit + 1)
        .collect();
    let next = if page.len() > limit {
        page.truncate(limit);
        page.last().map(|last| encode(key(last)))
    } else {
        None
    };
    Ok((page, next))
}

/// Declares the list answer of one item type: `{"items": [...], "nextCursor": ...}`.
macro_rules! list_of {
    ($name:ident, $item:ty) => {
        #[doc = concat!("One page of `", stringify!($item), "`.")]
        #[derive(Debug, serde::Serialize, utoipa::ToSchema)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            pub items: Vec<$item>,
            /// Pass as `cursor` for the next page; absent on the last page.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub next_cursor: Option<String>,
        }

        impl $name {
            pub fn new((items, next_cursor): (Vec<$item>, Option<String>)) -> Self {
                Self { items, next_cursor }
            }
        }
    };
}
pub(crate) use list_of;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_each_other_without_gaps_or_repeats() {
        let items: Vec<String> = (0..25).map(|i| format!("k{i:02}")).collect();
        let mut query = PageQuery {
            limit: Some(10),
            cursor: None,
        };
        let mut seen = Vec::new();
        loop {
            let (page, next) = slice(items.clone(), |s| s.as_str(), &query).unwrap();
            seen.extend(page);
            match next {
                Some(cursor) => query.cursor = Some(cursor),
                None => break,
            }
        }
        assert_eq!(seen, items);
    }

    #[test]
    fn bad_limits_and_cursors_are_refused() {
        let q = PageQuery {
            limit: Some(0),
            cursor: None,
        };
        assert_eq!(q.limit().unwrap_err().status(), 422);
        let q = PageQuery {
            limit: None,
            cursor: Some("%%%".into()),
        };
        assert_eq!(q.after().unwrap_err().status(), 400);
    }
}
