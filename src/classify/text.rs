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
#[inline]
fn fold_char(c: char, out: &mut String) {
    if c.is_ascii() {
        out.push(c.to_ascii_lowercase());
        return;
    }
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

/// Normalised tokens in one buffer (the model's fast path: no allocation per token).
#[derive(Debug, Default)]
pub struct NormTokens {
    buf: String,
    spans: Vec<(usize, usize)>,
}

impl NormTokens {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Token `i`.
    pub fn get(&self, i: usize) -> Option<&str> {
        self.spans.get(i).map(|&(a, b)| &self.buf[a..b])
    }

    /// All tokens in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.spans.iter().map(|&(a, b)| &self.buf[a..b])
    }
}

/// Normalised tokens only (fast path for the model).
pub fn norm_tokens(text: &str) -> NormTokens {
    let mut out = NormTokens {
        buf: String::with_capacity(text.len() + 16),
        spans: Vec::with_capacity(text.len() / 6),
    };
    let mut start = 0;
    for c in text.chars() {
        if c.is_alphanumeric() {
            fold_char(c, &mut out.buf);
        } else if out.buf.len() > start {
            out.spans.push((start, out.buf.len()));
            start = out.buf.len();
        }
    }
    if out.buf.len() > start {
        out.spans.push((start, out.buf.len()));
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
        assert_eq!(
            norm_tokens("Straße Nr. 5\nMÜLLER")
                .iter()
                .collect::<Vec<_>>(),
            norms
        );
    }
}
