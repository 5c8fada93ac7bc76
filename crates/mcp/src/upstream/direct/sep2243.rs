//! The SEP-2243 headers (`Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`) as far as the direct path
//! needs them: which headers rmcp derives per message, and which calls rmcp must build them
//! for (arguments promoted to headers, names carried in Base64).

use http::{HeaderName, HeaderValue};
use serde_json::{Map, Value};

/// SEP-2243 headers rmcp derives from each message.
pub(super) fn per_message(name: &HeaderName) -> bool {
    let name = name.as_str();
    name == "mcp-method" || name == "mcp-name" || name.starts_with("mcp-param-")
}

/// True when a schema promotes an argument to a header (`x-mcp-header`), anywhere in it.
pub(super) fn promotes_headers(schema: &Map<String, Value>) -> bool {
    fn in_value(value: &Value) -> bool {
        match value {
            Value::Object(map) => promotes_headers(map),
            Value::Array(items) => items.iter().any(in_value),
            _ => false,
        }
    }
    schema
        .iter()
        .any(|(key, value)| key == "x-mcp-header" || in_value(value))
}

/// Whether any of `tools` promotes arguments to headers.
pub(crate) fn any_promotes_headers(tools: &[rmcp::model::Tool]) -> bool {
    tools
        .iter()
        .any(|tool| promotes_headers(&tool.input_schema))
}

/// `Mcp-Name` for `name` when it travels as it is (rmcp would Base64-wrap anything outside
/// visible ASCII, or a value shaped like its Base64 sentinel).
pub(super) fn plain_name_header(name: &str) -> Option<HeaderValue> {
    let plain = !name.is_empty()
        && name.bytes().all(|b| (0x21..=0x7e).contains(&b))
        && !name.starts_with("=?base64?");
    plain.then(|| HeaderValue::from_str(name).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn header_annotations_are_found_at_any_depth() {
        let plain = json!({"type": "object", "properties": {"text": {"type": "string"}}});
        let nested = json!({"type": "object", "properties": {"where": {"type": "object",
            "properties": {"region": {"type": "string", "x-mcp-header": "Region"}}}}});
        let in_list = json!({"anyOf": [{"x-mcp-header": "A"}]});
        assert!(!promotes_headers(plain.as_object().unwrap()));
        assert!(promotes_headers(nested.as_object().unwrap()));
        assert!(promotes_headers(in_list.as_object().unwrap()));
    }

    #[test]
    fn names_needing_base64_stay_on_rmcp() {
        assert!(plain_name_header("echo").is_some());
        assert!(plain_name_header("a.b-c_d").is_some());
        for name in [
            "",
            "two words",
            " lead",
            "trail ",
            "naïve",
            "=?base64?eA==?=",
        ] {
            assert!(plain_name_header(name).is_none(), "{name:?}");
        }
    }
}
