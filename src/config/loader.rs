//! The loader: reads the config file, refuses secrets in it, applies the environment's
//! overrides and deserializes sections with the line of each problem.
//!
//! Every key can be overridden from the environment as `POSTSTELLE__SECTION__KEY=value`
//! (`__` separates levels, array elements are addressed by index, e.g.
//! `POSTSTELLE__MAILBOXES__0__NAME`). Values are read as TOML literals where they parse as one
//! (`true`, `5`, `"x"`), otherwise as strings; secrets always stay strings.
//!
//! The loader knows no component: sections are deserialized into whatever type their owner
//! asks for ([`deserialize`]).

use super::problem::{ConfigError, ConfigProblem, Problems, line_of, suggest, unknown_field_hint};
use super::secret::{env_name, is_secret_key};
use serde::de::DeserializeOwned;
use std::path::Path;

/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "POSTSTELLE__";

/// The `POSTSTELLE__…` variables of this process.
pub fn process_env() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect()
}

/// Reads a config file's text.
pub fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigError(vec![ConfigProblem {
            file: path.to_path_buf(),
            line: None,
            message: format!("cannot read: {e}"),
            hint: Some("pass the right file with --config".into()),
        }])
    })
}

/// Parses config text (named `path` in messages), refuses secrets that stand in it and applies
/// the environment overrides `env`. Returns the merged table and the problems found so far; a
/// TOML syntax error ends loading at once.
pub fn load(
    path: &Path,
    text: &str,
    env: &[(String, String)],
) -> Result<(toml::Table, Problems), ConfigError> {
    let mut problems = Problems::new(path, text);
    let mut table: toml::Table = toml::from_str(text).map_err(|e: toml::de::Error| {
        let mut p = Problems::new(path, text);
        p.push_at(
            e.span().map(|s| line_of(text, s.start)),
            e.message().trim().to_string(),
            Some("check the TOML syntax".into()),
        );
        p.into_error()
    })?;
    refuse_secrets(&table, &mut Vec::new(), &mut problems);
    for (key, val) in env {
        if let Err(msg) = apply_override(&mut table, key, val) {
            problems.push_at(None, format!("environment {key}: {msg}"), None);
        }
    }
    Ok((table, problems))
}

/// Every key that holds a secret ([`is_secret_key`]) and stands in the file is a problem.
fn refuse_secrets(table: &toml::Table, path: &mut Vec<String>, problems: &mut Problems) {
    for (key, value) in table {
        path.push(key.clone());
        if is_secret_key(key) && !value.is_table() {
            let at: Vec<&str> = path.iter().map(String::as_str).collect();
            problems.push_key(
                &at,
                format!("{} must not stand in the config file", at.join(".")),
                Some(format!(
                    "set {} or name a file with {key}_file",
                    env_name(&at)
                )),
            );
        } else {
            refuse_secrets_in(value, path, problems);
        }
        path.pop();
    }
}

fn refuse_secrets_in(value: &toml::Value, path: &mut Vec<String>, problems: &mut Problems) {
    match value {
        toml::Value::Table(t) => refuse_secrets(t, path, problems),
        toml::Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                path.push(i.to_string());
                refuse_secrets_in(v, path, problems);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Applies one `POSTSTELLE__A__B=value` override to the parsed table.
fn apply_override(root: &mut toml::Table, key: &str, val: &str) -> Result<(), String> {
    let path: Vec<String> = key[ENV_PREFIX.len().min(key.len())..]
        .split("__")
        .map(|s| s.to_ascii_lowercase())
        .collect();
    if path.iter().any(String::is_empty) {
        return Err("empty key segment".into());
    }
    // Secrets stay strings exactly as given (a password "1.50" is not the number 1.5).
    let parsed = if path.last().is_some_and(|k| is_secret_key(k)) {
        toml::Value::String(val.to_string())
    } else {
        parse_env_value(val)
    };
    let mut cur: &mut toml::Value = root
        .entry(path[0].clone())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    for seg in &path[1..] {
        cur = match cur {
            toml::Value::Table(t) => t
                .entry(seg.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new())),
            toml::Value::Array(a) => {
                let idx: usize = seg
                    .parse()
                    .map_err(|_| format!("\"{seg}\" is not an array index"))?;
                a.get_mut(idx)
                    .ok_or_else(|| format!("index {idx} is out of range"))?
            }
            _ => return Err(format!("\"{seg}\" is below a plain value")),
        };
    }
    *cur = parsed;
    Ok(())
}

fn parse_env_value(val: &str) -> toml::Value {
    let probe = format!("v = {val}");
    match toml::from_str::<toml::Table>(&probe) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(val.to_string())),
        Err(_) => toml::Value::String(val.to_string()),
    }
}

/// Deserializes `value`, which stands at the dotted path `at`, into `T`. A mismatch is pushed
/// with the line of the offending key and a spelling hint, and gives `None`.
pub fn deserialize<T: DeserializeOwned>(
    value: toml::Value,
    at: &[&str],
    problems: &mut Problems,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Some(v),
        Err(e) => {
            let mut path: Vec<String> = at.iter().map(|s| s.to_string()).collect();
            for seg in e.path().iter() {
                use serde_path_to_error::Segment;
                match seg {
                    Segment::Seq { index } => path.push(index.to_string()),
                    Segment::Map { key } => path.push(key.clone()),
                    Segment::Enum { variant } => path.push(variant.clone()),
                    Segment::Unknown => {}
                }
            }
            let msg = e.inner().message().trim().to_string();
            let hint = unknown_field_hint(&msg);
            // A message about a secret's value could quote it: say only what is wrong.
            let msg = if !msg.starts_with("unknown field") && path.iter().any(|k| is_secret_key(k))
            {
                "not a usable value (a secret: its value is not shown)".to_string()
            } else {
                msg
            };
            // "a.b: unknown field `c`" names the table; other messages name the key itself.
            let named = if msg.starts_with("unknown field") {
                &path[..path.len().saturating_sub(1)]
            } else {
                &path[..]
            };
            let message = if named.is_empty() {
                msg
            } else {
                format!("{}: {msg}", named.join("."))
            };
            let refs: Vec<&str> = path.iter().map(String::as_str).collect();
            problems.push_key(&refs, message, hint);
            None
        }
    }
}

/// Pushes a problem for every key of `table` (at the dotted path `at`) that is not in `known`.
pub fn unknown_keys(table: &toml::Table, at: &[&str], known: &[&str], problems: &mut Problems) {
    for key in table.keys() {
        if !known.contains(&key.as_str()) {
            let mut path = at.to_vec();
            path.push(key);
            let prefix = if at.is_empty() {
                String::new()
            } else {
                format!("{}: ", at.join("."))
            };
            problems.push_key(
                &path,
                format!("{prefix}unknown field `{key}`"),
                suggest(key, known).or_else(|| Some(format!("known: {}", known.join(", ")))),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Raw {
        name: String,
        #[serde(default)]
        count: u32,
    }

    #[test]
    fn secrets_in_the_file_are_refused_wherever_they_stand_and_env_applies() {
        let text =
            "[a]\nx = 1\n[[a.list]]\ntoken = \"t\"\n[b]\napi_key = \"k\"\napi_key_file = \"f\"\n";
        let env = vec![
            ("POSTSTELLE__A__X".to_string(), "2".to_string()),
            ("POSTSTELLE__B__SECRET".to_string(), "1.50".to_string()),
        ];
        let (table, p) = load(Path::new("t.toml"), text, &env).expect("parses");
        let msgs: Vec<String> = p.list().iter().map(|x| x.to_string()).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(
            msgs[0].contains("line 4: a.list.0.token must not stand in the config file"),
            "{msgs:?}"
        );
        assert!(
            msgs[0].contains("POSTSTELLE__A__LIST__0__TOKEN"),
            "{msgs:?}"
        );
        assert!(msgs[1].contains("line 6: b.api_key must not"), "{msgs:?}");
        assert!(!msgs.concat().contains("\"t\"") && !msgs.concat().contains("\"k\""));
        assert_eq!(table["a"]["x"].as_integer(), Some(2));
        assert_eq!(table["b"]["secret"].as_str(), Some("1.50"));
    }

    #[test]
    fn mismatches_name_the_key_and_its_line() {
        let text = "[s]\nname = \"x\"\ncount = \"many\"\n";
        let (table, mut p) = load(Path::new("t.toml"), text, &[]).expect("parses");
        let r: Option<Raw> = deserialize(table["s"].clone(), &["s"], &mut p);
        assert!(r.is_none());
        assert_eq!(p.list()[0].line, Some(3));
        assert!(
            p.list()[0].message.starts_with("s.count: invalid type"),
            "{:?}",
            p.list()
        );
        let text = "[s]\nname = \"x\"\ncuont = 1\n";
        let (table, mut p) = load(Path::new("t.toml"), text, &[]).expect("parses");
        let r: Option<Raw> = deserialize(table["s"].clone(), &["s"], &mut p);
        assert!(r.is_none());
        assert_eq!(p.list()[0].line, Some(3));
        assert!(p.list()[0].message.starts_with("s: unknown field `cuont`"));
        assert_eq!(p.list()[0].hint.as_deref(), Some("did you mean \"count\"?"));
    }
}
