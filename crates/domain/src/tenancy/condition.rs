//! Conditions of a custom role's permission, decided on each call's arguments.
//!
//! Two forms, as stored and as written in the admin API:
//!
//! - `{"argument": "graph", "matches": "acme_*"}` — one top-level argument must be a string
//!   matching the glob (`*`, `?`);
//! - `{"cel": "args.graph.startsWith(tenant + '_') && size(args.query) < 2000"}` — a
//!   [CEL](https://cel.dev) expression over `args` (the call's arguments), `tool`, `server`,
//!   `tenant`, `user` (`user:…`, `client:…`), `groups` and `roles`; it must evaluate to `true`.
//!
//! Both fail closed: a missing or mistyped argument, an expression that errors (unknown
//! field, wrong type) or yields anything but `true` does not hold. An expression is compiled
//! when the condition is read (a syntax error is refused with CEL's message), never per call.
//! The CEL interpreter (the `cel` crate) is pure computation — no I/O — so it lives here.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::target::wildcard;

/// Longest CEL expression accepted (bytes).
pub const MAX_CEL: usize = 4096;

/// What a condition may look at: one call and who makes it.
#[derive(Debug, Clone, Copy)]
pub struct CallFacts<'a> {
    pub arguments: &'a Map<String, Value>,
    pub tool: &'a str,
    pub server: &'a str,
    pub tenant: &'a str,
    /// `user:<email>`, `client:<id>` or `anonymous`.
    pub user: &'a str,
    pub groups: &'a [String],
    pub roles: &'a [String],
}

/// The root CEL context with the built-in functions, shared by every evaluation.
static ROOT: std::sync::LazyLock<cel::Context> = std::sync::LazyLock::new(cel::Context::default);

fn strings(list: &[String]) -> cel::Value {
    cel::Value::List(Arc::new(
        list.iter()
            .map(|s| cel::Value::String(Arc::new(s.clone())))
            .collect(),
    ))
}

/// A compiled CEL expression; compared, printed and stored as its source text.
#[derive(Clone)]
pub struct CelExpression {
    source: String,
    program: Arc<cel::Program>,
}

impl CelExpression {
    /// Compiles `source`; the error is CEL's, pointing at the problem.
    pub fn compile(source: &str) -> Result<Self, String> {
        if source.trim().is_empty() {
            return Err("cel: the expression is empty".into());
        }
        if source.len() > MAX_CEL {
            return Err(format!("cel: longer than {MAX_CEL} bytes"));
        }
        let program = cel::Program::compile(source).map_err(|e| format!("cel: {e}"))?;
        Ok(Self {
            source: source.to_owned(),
            program: Arc::new(program),
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn holds(&self, facts: &CallFacts<'_>) -> bool {
        // A scope over the shared root: building the root (every built-in function) costs
        // ~10 µs, a scope over it ~1 µs.
        let mut context = ROOT.new_inner_scope();
        let Ok(arguments) = cel::to_value(facts.arguments) else {
            return false;
        };
        context.add_variable_from_value("args", arguments);
        context.add_variable_from_value("tool", facts.tool);
        context.add_variable_from_value("server", facts.server);
        context.add_variable_from_value("tenant", facts.tenant);
        context.add_variable_from_value("user", facts.user);
        context.add_variable_from_value("groups", strings(facts.groups));
        context.add_variable_from_value("roles", strings(facts.roles));
        matches!(self.program.execute(&context), Ok(cel::Value::Bool(true)))
    }
}

impl PartialEq for CelExpression {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for CelExpression {}

impl fmt::Debug for CelExpression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Cel").field(&self.source).finish()
    }
}

/// One condition of a permission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawCondition", into = "RawCondition")]
pub enum Condition {
    /// A top-level string argument matching a glob.
    Matches { argument: String, matches: String },
    /// A CEL expression that must be `true`.
    Cel(CelExpression),
}

/// The stored and written shape: either `argument` + `matches`, or `cel`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    argument: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    matches: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cel: Option<String>,
}

impl TryFrom<RawCondition> for Condition {
    type Error = String;

    fn try_from(raw: RawCondition) -> Result<Self, String> {
        match (raw.argument, raw.matches, raw.cel) {
            (Some(argument), Some(matches), None) => Ok(Condition::Matches { argument, matches }),
            (None, None, Some(source)) => CelExpression::compile(&source).map(Condition::Cel),
            _ => Err(
                "a condition is either {\"argument\": …, \"matches\": \"glob\"} or {\"cel\": \"expression\"}"
                    .into(),
            ),
        }
    }
}

impl From<Condition> for RawCondition {
    fn from(condition: Condition) -> Self {
        match condition {
            Condition::Matches { argument, matches } => RawCondition {
                argument: Some(argument),
                matches: Some(matches),
                cel: None,
            },
            Condition::Cel(expression) => RawCondition {
                argument: None,
                matches: None,
                cel: Some(expression.source),
            },
        }
    }
}

impl Condition {
    /// Whether the call satisfies the condition.
    pub fn holds(&self, facts: &CallFacts<'_>) -> bool {
        match self {
            Condition::Matches { argument, matches } => facts
                .arguments
                .get(argument)
                .and_then(|v| v.as_str())
                .is_some_and(|v| wildcard(matches.as_bytes(), v.as_bytes())),
            Condition::Cel(expression) => expression.holds(facts),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts<'a>(arguments: &'a Map<String, Value>, groups: &'a [String]) -> CallFacts<'a> {
        CallFacts {
            arguments,
            tool: "query",
            server: "falkor",
            tenant: "acme",
            user: "user:ada@acme.com",
            groups,
            roles: &[],
        }
    }

    #[test]
    fn globs_hold_on_matching_string_arguments_only() {
        let c: Condition =
            serde_json::from_value(json!({"argument": "graph", "matches": "acme_*"})).unwrap();
        let ok = json!({"graph": "acme_sales"});
        assert!(c.holds(&facts(ok.as_object().unwrap(), &[])));
        for bad in [
            json!({"graph": "globex_sales"}),
            json!({"graph": 7}),
            json!({}),
        ] {
            assert!(!c.holds(&facts(bad.as_object().unwrap(), &[])), "{bad}");
        }
    }

    #[test]
    fn cel_sees_the_call_and_the_caller() {
        let c: Condition = serde_json::from_value(json!({
            "cel": "args.graph.startsWith(tenant + '_') && size(args.query) < 20 && 'eng' in groups && tool == 'query'"
        }))
        .unwrap();
        let eng = vec!["eng".to_owned()];
        let ok = json!({"graph": "acme_sales", "query": "MATCH (n)"});
        assert!(c.holds(&facts(ok.as_object().unwrap(), &eng)));
        assert!(!c.holds(&facts(ok.as_object().unwrap(), &[])), "not in eng");
        let other = json!({"graph": "globex_sales", "query": "MATCH (n)"});
        assert!(!c.holds(&facts(other.as_object().unwrap(), &eng)));
        let long = json!({"graph": "acme_sales", "query": "MATCH (n) RETURN n LIMIT 1000"});
        assert!(!c.holds(&facts(long.as_object().unwrap(), &eng)));
    }

    #[test]
    fn cel_fails_closed() {
        let missing: Condition =
            serde_json::from_value(json!({"cel": "args.graph == 'x'"})).unwrap();
        assert!(!missing.holds(&facts(&Map::new(), &[])), "unknown field");
        let not_bool: Condition = serde_json::from_value(json!({"cel": "'yes'"})).unwrap();
        assert!(!not_bool.holds(&facts(&Map::new(), &[])));
        let wrong_type: Condition =
            serde_json::from_value(json!({"cel": "args.n + 'x' == 'y'"})).unwrap();
        let n = json!({"n": 1});
        assert!(!wrong_type.holds(&facts(n.as_object().unwrap(), &[])));
    }

    #[test]
    fn bad_conditions_are_refused_when_read() {
        let e = serde_json::from_value::<Condition>(json!({"cel": "args.graph.startsWith("}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cel:") && e.contains("Syntax error"), "{e}");
        let both = json!({"cel": "true", "argument": "a", "matches": "b"});
        assert!(serde_json::from_value::<Condition>(both).is_err());
        assert!(serde_json::from_value::<Condition>(json!({"argument": "a"})).is_err());
        assert!(serde_json::from_value::<Condition>(json!({"cel": " "})).is_err());
    }

    #[test]
    fn conditions_round_trip_in_their_written_form() {
        for written in [
            json!({"argument": "graph", "matches": "acme_*"}),
            json!({"cel": "size(args) == 0"}),
        ] {
            let c: Condition = serde_json::from_value(written.clone()).unwrap();
            assert_eq!(serde_json::to_value(&c).unwrap(), written);
        }
    }
}
