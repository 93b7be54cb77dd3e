//! Text normalisation and tokenisation shared by rules and model.
//!
//! Lower case; umlauts and ß folded (`ä -> ae`, `ß -> ss`) so that "Strasse", "Straße" and
//! OCR's variants meet; tokens are runs of letters and digits.

/// A token with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// Normalised form.
    pub norm: String,
    /// The original spelling.
    pub raw: String,
    /// 1-based line in the text.
    pub line: u32,
}

/// Folds one character into `out` (lower case, umlauts expanded).
fn fold_char(c: char, out: &mut String) {
    match c {
        'ä' | 'Ä' => out.push_str("ae"),
        'ö' | 'Ö' => out.push_str("oe"),
        'ü' | 'Ü' => out.push_str("ue"),
        'ß' | 'ẞ' => out.push_str("ss"),
        _ => out.extend(c.to_lowercase()),
    }
}

/// Normalises a word or phrase (no tokenisation).
pub fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        fold_char(c, &mut out);
    }
    out
}

/// Splits text into tokens with line numbers.
pub fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut line = 1u32;
    let mut raw = String::new();
    let mut norm = String::new();
    let flush = |raw: &mut String, norm: &mut String, line: u32, tokens: &mut Vec<Token>| {
        if !raw.is_empty() {
            tokens.push(Token {
                norm: std::mem::take(norm),
                raw: std::mem::take(raw),
                line,
            });
        }
    };
    for c in text.chars() {
        if c.is_alphanumeric() {
            raw.push(c);
            fold_char(c, &mut norm);
        } else {
            flush(&mut raw, &mut norm, line, &mut tokens);
            if c == '\n' {
                line += 1;
            }
        }
    }
    flush(&mut raw, &mut norm, line, &mut tokens);
    tokens
}

/// Normalised tokens only (fast path for the model).
pub fn norm_tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() {
            fold_char(c, &mut cur);
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_umlauts_and_keeps_lines() {
        let t = tokenize("Straße Nr. 5\nMÜLLER");
        let norms: Vec<&str> = t.iter().map(|t| t.norm.as_str()).collect();
        assert_eq!(norms, ["strasse", "nr", "5", "mueller"]);
        assert_eq!(t[3].line, 2);
        assert_eq!(t[3].raw, "MÜLLER");
        assert_eq!(norm_tokens("Straße Nr. 5\nMÜLLER"), norms);
    }
}
