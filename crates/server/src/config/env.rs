//! Environment overrides: `SWITCHBOARD_<SECTION>__<KEY>=value` sets `[section] key`, and a
//! few single-level names that operators expect (`SWITCHBOARD_ADMIN_TOKEN`,
//! `SWITCHBOARD_MASTER_KEY`) are aliases.

use super::{ConfigError, ENV_PREFIX};

/// Single-level variables that set a configuration key (taken as strings, never as TOML:
/// a token must not be reinterpreted).
const ALIASES: &[(&str, &[&str])] = &[
    ("ADMIN_TOKEN", &["admin", "token"]),
    ("MASTER_KEY", &["secrets", "master_key"]),
];

/// One `SWITCHBOARD_A__B__C=value` override.
pub(super) struct EnvOverride {
    pub(super) var: String,
    pub(super) keys: Vec<String>,
    pub(super) value: String,
    pub(super) as_string: bool,
}

impl EnvOverride {
    pub(super) fn apply(&self, doc: &mut toml::Table) -> Result<(), ConfigError> {
        let parsed = if self.as_string {
            None
        } else {
            format!("v = {}", self.value)
                .parse::<toml::Table>()
                .ok()
                .and_then(|mut t| t.remove("v"))
        };
        let value = parsed.unwrap_or_else(|| toml::Value::String(self.value.clone()));
        let Some((last, parents)) = self.keys.split_last() else {
            return Ok(());
        };
        let mut table = doc;
        for key in parents {
            let entry = table
                .entry(key.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table = entry.as_table_mut().ok_or_else(|| ConfigError::Env {
                var: self.var.clone(),
                message: format!("{key} is not a table in the configuration"),
            })?;
        }
        table.insert(last.clone(), value);
        Ok(())
    }
}

/// Collects the `SWITCHBOARD_A__B__C=value` overrides from `env`.
pub(super) fn env_overrides(
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<EnvOverride>, ConfigError> {
    let mut overrides = Vec::new();
    for (var, value) in env {
        let Some(path) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if let Some(keys) = ALIASES
            .iter()
            .find(|(name, _)| *name == path)
            .map(|(_, k)| k)
        {
            if value.is_empty() {
                continue; // `SWITCHBOARD_ADMIN_TOKEN=` means unset, as in a shell.
            }
            overrides.push(EnvOverride {
                keys: keys.iter().map(|k| (*k).to_owned()).collect(),
                var,
                value,
                as_string: true,
            });
            continue;
        }
        if !path.contains("__") {
            continue; // single-level variables (SWITCHBOARD_CONFIG, SWITCHBOARD_LOG) are CLI flags
        }
        let keys: Vec<String> = path.split("__").map(|k| k.to_ascii_lowercase()).collect();
        if keys.iter().any(|k| k.is_empty()) {
            return Err(ConfigError::Env {
                var,
                message: "empty key segment; write SWITCHBOARD_SECTION__KEY".into(),
            });
        }
        overrides.push(EnvOverride {
            var,
            keys,
            value,
            as_string: false,
        });
    }
    Ok(overrides)
}
