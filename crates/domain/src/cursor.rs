//! Opaque pagination cursors for aggregated lists.
//!
//! The gateway serves each list from its merged, name-sorted catalog, so a page boundary is
//! fully described by the last key handed out. A cursor is that key plus the list kind,
//! base64url-encoded: it stays valid when upstreams come and go between two pages (the next
//! page simply starts after the last key) and a `tools/list` cursor can't be replayed against
//! `prompts/list`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Longest cursor accepted from a client, before decoding.
pub const MAX_CURSOR_LEN: usize = 512;

/// Which aggregated list a cursor belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
    ResourceTemplates,
}

impl ListKind {
    fn tag(self) -> char {
        match self {
            ListKind::Tools => 't',
            ListKind::Prompts => 'p',
            ListKind::Resources => 'r',
            ListKind::ResourceTemplates => 'T',
        }
    }

    fn method(self) -> &'static str {
        match self {
            ListKind::Tools => "tools/list",
            ListKind::Prompts => "prompts/list",
            ListKind::Resources => "resources/list",
            ListKind::ResourceTemplates => "resources/templates/list",
        }
    }
}

/// Why a client's cursor was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error(
        "cursor is longer than {MAX_CURSOR_LEN} characters; pass back the nextCursor you received"
    )]
    TooLong,
    #[error("cursor is not a cursor issued by this gateway; pass back the nextCursor you received")]
    Malformed,
    #[error("cursor was issued for {issued_for}, not {used_for}")]
    WrongList {
        issued_for: &'static str,
        used_for: &'static str,
    },
}

/// A decoded cursor: the list it belongs to and the last key of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub kind: ListKind,
    pub after: String,
}

impl Cursor {
    /// Encodes a cursor for the page following `after`.
    pub fn encode(kind: ListKind, after: &str) -> String {
        let mut raw = String::with_capacity(after.len() + 1);
        raw.push(kind.tag());
        raw.push_str(after);
        URL_SAFE_NO_PAD.encode(raw.as_bytes())
    }

    /// Decodes a cursor a client passed back for list `kind`.
    pub fn decode(kind: ListKind, cursor: &str) -> Result<Cursor, CursorError> {
        if cursor.len() > MAX_CURSOR_LEN {
            return Err(CursorError::TooLong);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| CursorError::Malformed)?;
        let raw = String::from_utf8(bytes).map_err(|_| CursorError::Malformed)?;
        let mut chars = raw.chars();
        let tag = chars.next().ok_or(CursorError::Malformed)?;
        let issued = [
            ListKind::Tools,
            ListKind::Prompts,
            ListKind::Resources,
            ListKind::ResourceTemplates,
        ]
        .into_iter()
        .find(|k| k.tag() == tag)
        .ok_or(CursorError::Malformed)?;
        if issued != kind {
            return Err(CursorError::WrongList {
                issued_for: issued.method(),
                used_for: kind.method(),
            });
        }
        Ok(Cursor {
            kind,
            after: chars.as_str().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let c = Cursor::encode(ListKind::Tools, "demo__echo");
        assert_eq!(
            Cursor::decode(ListKind::Tools, &c),
            Ok(Cursor {
                kind: ListKind::Tools,
                after: "demo__echo".into()
            })
        );
    }

    #[test]
    fn refuses_cursor_of_another_list() {
        let c = Cursor::encode(ListKind::Prompts, "x");
        assert!(matches!(
            Cursor::decode(ListKind::Tools, &c),
            Err(CursorError::WrongList { .. })
        ));
    }

    #[test]
    fn refuses_garbage() {
        assert_eq!(
            Cursor::decode(ListKind::Tools, "!!!"),
            Err(CursorError::Malformed)
        );
        assert_eq!(
            Cursor::decode(ListKind::Tools, ""),
            Err(CursorError::Malformed)
        );
        let long = "a".repeat(MAX_CURSOR_LEN + 1);
        assert_eq!(
            Cursor::decode(ListKind::Tools, &long),
            Err(CursorError::TooLong)
        );
    }
}
