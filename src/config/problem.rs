//! Configuration problems with the file and line they were found at, and the functions that find
//! those lines and suggest a spelling.
//!
//! Section validators receive a [`Problems`] and push what they find; the loader turns a
//! non-empty list into a [`ConfigError`].

use std::fmt;
use std::path::{Path, PathBuf};

/// A configuration problem, with the place it was found and a hint.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigProblem {
    /// The file that holds the problem.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ": line {line}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

/// All problems found while loading a configuration.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError(pub Vec<ConfigProblem>);

/// The problems found in one configuration file, collected by every section's validator.
///
/// Lines are found in the file's text: by a needle (the first line that is not a comment and
/// contains it), by a needle within one table's block, or by a key's dotted path.
#[derive(Debug, Clone)]
pub struct Problems {
    file: PathBuf,
    text: String,
    list: Vec<ConfigProblem>,
}

impl Problems {
    /// An empty list for the file `file` with the text `text`.
    pub fn new(file: &Path, text: &str) -> Self {
        Self {
            file: file.to_path_buf(),
            text: text.to_string(),
            list: Vec::new(),
        }
    }

    /// The file the problems are about.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// A problem at the first line that contains `needle`.
    pub fn push(&mut self, needle: &str, message: impl Into<String>, hint: Option<String>) {
        let line = find_line(&self.text, needle);
        self.push_at(line, message, hint);
    }

    /// A problem at the first line containing `needle` within the block of the table `table`
    /// (e.g. `["deliver", "targets", "dms"]`); the table's header line when the needle is not
    /// there, and the first such line of the file when the table has no header.
    pub fn push_in(
        &mut self,
        table: &[&str],
        needle: &str,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let lines: Vec<&str> = self.text.lines().collect();
        let line = match header_index(&lines, table) {
            Some(h) => Some(
                block(&lines, h)
                    .find(|(_, l)| !is_comment(l) && l.contains(needle))
                    .map_or(h, |(i, _)| i)
                    + 1,
            ),
            None => find_line(&self.text, needle),
        };
        self.push_at(line, message, hint);
    }

    /// A problem at the line of the key with this dotted path (see [`line_of_key`]).
    pub fn push_key(&mut self, path: &[&str], message: impl Into<String>, hint: Option<String>) {
        let line = line_of_key(&self.text, path);
        self.push_at(line, message, hint);
    }

    /// A problem at a known line (or none).
    pub fn push_at(
        &mut self,
        line: Option<usize>,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.list.push(ConfigProblem {
            file: self.file.clone(),
            line,
            message: message.into(),
            hint,
        });
    }

    /// True when nothing was found.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The problems found so far.
    pub fn list(&self) -> &[ConfigProblem] {
        &self.list
    }

    /// `Ok(value)` when nothing was found, else every problem.
    pub fn into_result<T>(self, value: T) -> Result<T, ConfigError> {
        if self.list.is_empty() {
            Ok(value)
        } else {
            Err(ConfigError(self.list))
        }
    }

    /// Every problem found, as an error.
    pub fn into_error(self) -> ConfigError {
        ConfigError(self.list)
    }
}

/// 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// 1-based line of the first line that is not a comment and contains `needle`.
pub fn find_line(text: &str, needle: &str) -> Option<usize> {
    text.lines()
        .position(|l| !is_comment(l) && l.contains(needle))
        .map(|i| i + 1)
}

/// 1-based line of a key given by its dotted path, e.g. `["intake", "imap", "accounts", "0",
/// "password"]` (numbers address the entries of an array of tables): the key's own header when
/// it is a table, else its line inside the innermost table that has a header, else that
/// header's line, else the first line that sets a key of the same name.
pub fn line_of_key(text: &str, path: &[&str]) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    // The key is a table with a header of its own.
    if let Some(h) = header_index(&lines, path) {
        return Some(h + 1);
    }
    for k in (0..path.len()).rev() {
        if is_index(path[k]) {
            continue;
        }
        // The block of the table `path[..k]`: the top of the file for k = 0.
        let header = if k == 0 {
            None
        } else {
            match header_index(&lines, &path[..k]) {
                Some(h) => Some(h),
                None => continue,
            }
        };
        let start = header.map_or(0, |h| h + 1);
        let hit = lines[start..]
            .iter()
            .take_while(|l| !l.trim_start().starts_with('['))
            .position(|l| is_key_line(l, path[k]));
        match (hit, header) {
            (Some(i), _) => return Some(start + i + 1),
            (None, Some(h)) => return Some(h + 1),
            (None, None) => {}
        }
    }
    let last = path.last()?;
    lines
        .iter()
        .position(|l| is_key_line(l, last))
        .map(|i| i + 1)
}

fn is_index(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// True for a line that sets `key` (`key = ...`, `key.sub = ...`).
fn is_key_line(line: &str, key: &str) -> bool {
    let t = line.trim_start();
    let Some(rest) = t.strip_prefix(key).or_else(|| {
        t.strip_prefix('"')
            .and_then(|r| r.strip_prefix(key))
            .and_then(|r| r.strip_prefix('"'))
    }) else {
        return false;
    };
    let rest = rest.trim_start();
    rest.starts_with('=') || rest.starts_with('.')
}

/// 0-based index of the header line of a table (`[a.b]`) or of the n-th entry of an array of
/// tables (`[[a.b]]`, path ending in the index).
fn header_index(lines: &[&str], table: &[&str]) -> Option<usize> {
    let (name, index) = match table.split_last() {
        Some((last, rest)) if is_index(last) && !rest.is_empty() => {
            (rest.join("."), last.parse::<usize>().ok())
        }
        _ => (table.join("."), None),
    };
    let header = |l: &str| {
        let t = l.trim();
        let t = t.split_once(" #").map_or(t, |(h, _)| h.trim_end());
        t.to_string()
    };
    match index {
        None => {
            let want = format!("[{name}]");
            lines.iter().position(|l| header(l) == want)
        }
        Some(n) => {
            let want = format!("[[{name}]]");
            lines
                .iter()
                .enumerate()
                .filter(|(_, l)| header(l) == want)
                .nth(n)
                .map(|(i, _)| i)
        }
    }
}

/// The lines of the block that starts at the header `h` (up to the next header).
fn block<'a>(lines: &'a [&'a str], h: usize) -> impl Iterator<Item = (usize, &'a &'a str)> {
    lines
        .iter()
        .enumerate()
        .skip(h + 1)
        .take_while(|(_, l)| !l.trim_start().starts_with('['))
}

/// "did you mean …" for a misspelt name.
pub fn suggest(got: &str, known: &[&str]) -> Option<String> {
    known
        .iter()
        .map(|k| {
            // Short names: edit distance (swapped letters count once); long ones: Jaro-Winkler.
            let close = strsim::damerau_levenshtein(got, k) <= (k.len() / 3).max(1);
            let score = strsim::jaro_winkler(got, k) + if close { 1.0 } else { 0.0 };
            (score, k)
        })
        .filter(|(s, _)| *s > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| format!("did you mean \"{k}\"?"))
}

/// The hint for a serde message such as "unknown field `adress`, expected one of `a`, `b`".
pub fn unknown_field_hint(msg: &str) -> Option<String> {
    if !msg.starts_with("unknown field") && !msg.starts_with("unknown variant") {
        return None;
    }
    let got = msg.split('`').nth(1)?;
    let expected: Vec<&str> = msg.split('`').skip(3).step_by(2).collect();
    suggest(got, &expected).or_else(|| Some("remove the key or check its spelling".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
top = 1
[deliver]
default_target = \"dms\"
# password = \"no\"

[deliver.targets.dms]
kind = \"filesystem\"
root = \"var/dms\"

[deliver.targets.t]
kind = \"rest\"
fields = { a = \"b\" }
secret = \"x\"

[[intake.imap.accounts]]
name = \"a\"

[[intake.imap.accounts]]
name = \"b\"
password = \"y\"
";

    #[test]
    fn keys_are_found_in_their_own_table() {
        assert_eq!(line_of_key(TEXT, &["top"]), Some(1));
        assert_eq!(
            line_of_key(TEXT, &["deliver", "targets", "t", "kind"]),
            Some(11)
        );
        assert_eq!(
            line_of_key(TEXT, &["deliver", "targets", "dms", "kind"]),
            Some(7)
        );
        assert_eq!(
            line_of_key(TEXT, &["deliver", "targets", "t", "fields", "a"]),
            Some(12)
        );
        assert_eq!(
            line_of_key(TEXT, &["deliver", "targets", "t", "nothing"]),
            Some(10)
        );
        assert_eq!(
            line_of_key(TEXT, &["intake", "imap", "accounts", "1", "password"]),
            Some(20)
        );
        assert_eq!(
            line_of_key(TEXT, &["intake", "imap", "accounts", "0", "name"]),
            Some(16)
        );
        assert_eq!(line_of_key(TEXT, &["api", "token"]), None);
        let mut p = Problems::new(Path::new("x.toml"), TEXT);
        p.push_in(&["deliver", "targets", "t"], "kind =", "m", None);
        p.push_in(&["deliver", "targets", "gone"], "kind =", "m", None);
        assert_eq!(p.list()[0].line, Some(11));
        assert_eq!(p.list()[1].line, Some(7));
    }

    #[test]
    fn unknown_fields_get_a_suggestion() {
        assert_eq!(
            unknown_field_hint("unknown field `adress`, expected one of `address`, `name`"),
            Some("did you mean \"address\"?".into())
        );
        assert_eq!(unknown_field_hint("invalid type: string"), None);
    }
}
