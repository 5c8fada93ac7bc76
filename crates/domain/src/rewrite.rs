//! Rules that let one shared upstream serve many tenants without them seeing each other's
//! data: "prefix argument `graph` with `{{tenant}}_`" on the way in, and "keep only list items
//! with the tenant's prefix, then strip it" on the way out.
//!
//! Result filtering fails closed: in a list, an item that does not carry the tenant's prefix
//! is dropped — a header line of a text listing goes too, never another tenant's name.
//!
//! - JSON (structured content, or a text block that parses as JSON): in every array, a
//!   string is kept (prefix stripped) only when it starts with the prefix; an object is kept
//!   only when one of its own string fields does (those fields are stripped); numbers,
//!   booleans and nulls stay. Strings outside arrays are stripped when they carry the prefix.
//! - Other text: one item per line; only lines starting with the prefix (after leading
//!   spaces) are kept, stripped.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::template::{Encoding, Template};
use crate::tenancy::target::wildcard;

/// `[[upstreams.<name>.arguments]]` as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawArgumentRule {
    /// Upstream tool names it applies to (`*` and `?` wildcards); all when omitted.
    pub tools: Option<String>,
    /// The top-level argument to rewrite.
    pub argument: String,
    /// Put in front of the argument's value; `{{tenant}}` is the calling tenant.
    pub prefix: String,
}

/// `[[upstreams.<name>.results]]` as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawResultRule {
    /// Upstream tool names it applies to; all when omitted.
    pub tools: Option<String>,
    /// Keep only list items starting with this (e.g. `{{tenant}}_`), and strip it.
    pub keep_prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ArgumentRule {
    tools: String,
    argument: String,
    prefix: Template,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ResultRule {
    tools: String,
    keep_prefix: Template,
}

/// A server's rewriting rules, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewrites {
    arguments: Vec<ArgumentRule>,
    results: Vec<ResultRule>,
}

/// A prefix template: only `{{tenant}}` (a secret must never end up in an argument the
/// upstream may echo back).
fn prefix_template(text: &str) -> Result<Template, String> {
    let template = Template::parse(text)?;
    if template.secrets().next().is_some() {
        return Err("only {{tenant}} may be used here, not secrets".into());
    }
    if text.is_empty() {
        return Err("must not be empty; e.g. \"{{tenant}}_\"".into());
    }
    Ok(template)
}

impl Rewrites {
    /// Checks the rules; the error names the field (`arguments` or `results`).
    pub fn from_raw(
        arguments: Vec<RawArgumentRule>,
        results: Vec<RawResultRule>,
    ) -> Result<Rewrites, (&'static str, String)> {
        let arguments = arguments
            .into_iter()
            .map(|raw| {
                if raw.argument.is_empty() {
                    return Err(("arguments", "argument: name the argument to prefix".into()));
                }
                Ok(ArgumentRule {
                    tools: raw.tools.unwrap_or_else(|| "*".into()),
                    argument: raw.argument,
                    prefix: prefix_template(&raw.prefix)
                        .map_err(|m| ("arguments", format!("prefix: {m}")))?,
                })
            })
            .collect::<Result<_, _>>()?;
        let results = results
            .into_iter()
            .map(|raw| {
                Ok(ResultRule {
                    tools: raw.tools.unwrap_or_else(|| "*".into()),
                    keep_prefix: prefix_template(&raw.keep_prefix)
                        .map_err(|m| ("results", format!("keep_prefix: {m}")))?,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Rewrites { arguments, results })
    }

    /// True when there is no rule.
    pub fn is_empty(&self) -> bool {
        self.arguments.is_empty() && self.results.is_empty()
    }

    /// Prefixes the arguments the rules name for `tool`, called by `tenant`. An argument
    /// that is absent stays absent; one that is not a string is refused (the message says
    /// which).
    pub fn rewrite_arguments(
        &self,
        tool: &str,
        tenant: &str,
        arguments: &mut Map<String, Value>,
    ) -> Result<(), String> {
        for rule in self.arguments.iter().filter(|r| applies(&r.tools, tool)) {
            match arguments.get_mut(&rule.argument) {
                None => {}
                Some(Value::String(value)) => {
                    let prefix = rule.prefix.render(tenant, |_| None, Encoding::Raw);
                    value.insert_str(0, &prefix);
                }
                Some(_) => {
                    return Err(format!(
                        "argument {:?} of {tool:?} must be a string",
                        rule.argument
                    ));
                }
            }
        }
        Ok(())
    }

    /// The prefixes whose items `tool`'s results keep, for `tenant` (empty: no filtering).
    pub fn result_prefixes(&self, tool: &str, tenant: &str) -> Vec<String> {
        self.results
            .iter()
            .filter(|r| applies(&r.tools, tool))
            .map(|r| r.keep_prefix.render(tenant, |_| None, Encoding::Raw))
            .collect()
    }
}

fn applies(pattern: &str, tool: &str) -> bool {
    wildcard(pattern.as_bytes(), tool.as_bytes())
}

/// Filters a JSON value in place (see the module docs).
pub fn filter_json(value: &mut Value, prefix: &str) {
    match value {
        Value::String(s) => {
            if let Some(rest) = s.strip_prefix(prefix) {
                *s = rest.to_owned();
            }
        }
        Value::Array(items) => {
            items.retain(|item| match item {
                Value::String(s) => s.starts_with(prefix),
                Value::Object(fields) => fields
                    .values()
                    .any(|v| v.as_str().is_some_and(|s| s.starts_with(prefix))),
                _ => true,
            });
            for item in items {
                filter_json(item, prefix);
            }
        }
        Value::Object(fields) => {
            for field in fields.values_mut() {
                filter_json(field, prefix);
            }
        }
        _ => {}
    }
}

/// Filters a text block: as JSON when it is JSON, else line by line.
pub fn filter_text(text: &str, prefix: &str) -> String {
    if let Ok(mut value) = serde_json::from_str::<Value>(text)
        && (value.is_array() || value.is_object())
    {
        filter_json(&mut value, prefix);
        return value.to_string();
    }
    text.lines()
        .filter_map(|line| line.trim_start().strip_prefix(prefix))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(arguments: &[(&str, &str, &str)], results: &[(&str, &str)]) -> Rewrites {
        Rewrites::from_raw(
            arguments
                .iter()
                .map(|(tools, argument, prefix)| RawArgumentRule {
                    tools: Some(tools.to_string()),
                    argument: argument.to_string(),
                    prefix: prefix.to_string(),
                })
                .collect(),
            results
                .iter()
                .map(|(tools, keep)| RawResultRule {
                    tools: Some(tools.to_string()),
                    keep_prefix: keep.to_string(),
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn arguments_get_the_tenants_prefix() {
        let r = rules(&[("query_*", "graph", "{{tenant}}_")], &[]);
        let mut args = json!({"graph": "users", "query": "MATCH (n) RETURN n"})
            .as_object()
            .unwrap()
            .clone();
        r.rewrite_arguments("query_graph", "acme", &mut args)
            .unwrap();
        assert_eq!(args["graph"], "acme_users");
        assert_eq!(args["query"], "MATCH (n) RETURN n");
        // Another tool, or an absent argument: untouched.
        let mut other = json!({"graph": "users"}).as_object().unwrap().clone();
        r.rewrite_arguments("list_graphs", "acme", &mut other)
            .unwrap();
        assert_eq!(other["graph"], "users");
        let mut absent = Map::new();
        r.rewrite_arguments("query_graph", "acme", &mut absent)
            .unwrap();
        assert!(absent.is_empty());
        let mut wrong = json!({"graph": 7}).as_object().unwrap().clone();
        let e = r
            .rewrite_arguments("query_graph", "acme", &mut wrong)
            .unwrap_err();
        assert!(e.contains("must be a string"), "{e}");
    }

    #[test]
    fn json_lists_keep_only_the_tenants_items() {
        let mut v = json!({
            "graphs": ["acme_users", "globex_orders", "acme_products"],
            "details": [{"name": "acme_users", "nodes": 3}, {"name": "globex_orders", "nodes": 9}],
            "count": 3,
            "current": "acme_users"
        });
        filter_json(&mut v, "acme_");
        assert_eq!(
            v,
            json!({
                "graphs": ["users", "products"],
                "details": [{"name": "users", "nodes": 3}],
                "count": 3,
                "current": "users"
            })
        );
    }

    #[test]
    fn text_lists_keep_only_the_tenants_lines() {
        assert_eq!(
            filter_text(
                "Graphs:\n  acme_users\nglobex_orders\nacme_products",
                "acme_"
            ),
            "users\nproducts"
        );
        assert_eq!(filter_text(r#"["acme_a","globex_b"]"#, "acme_"), r#"["a"]"#);
    }

    #[test]
    fn result_prefixes_follow_the_tools_glob() {
        let r = rules(&[], &[("list_*", "{{tenant}}_")]);
        assert_eq!(r.result_prefixes("list_graphs", "acme"), vec!["acme_"]);
        assert!(r.result_prefixes("query_graph", "acme").is_empty());
    }

    #[test]
    fn secrets_and_empty_prefixes_are_refused() {
        let bad = Rewrites::from_raw(
            vec![RawArgumentRule {
                tools: None,
                argument: "graph".into(),
                prefix: "{{secret.key}}".into(),
            }],
            vec![],
        )
        .unwrap_err();
        assert_eq!(bad.0, "arguments");
        let empty = Rewrites::from_raw(
            vec![],
            vec![RawResultRule {
                tools: None,
                keep_prefix: String::new(),
            }],
        )
        .unwrap_err();
        assert_eq!(empty.0, "results");
    }
}
