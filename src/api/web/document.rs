//! What the review station and the department inbox show of one document: its page images
//! (`/dokumente/{id}/seite/{n}`, drawn in the sandbox), the explanation of its decision as
//! German sentences, and the words that decided, marked where they stand (on the page image
//! from the OCR word boxes; in the text for text PDFs, e-mails and text files).
//!
//! Every route here checks that the signed-in person may see the document (department
//! isolation): another department's document answers 404 like one that does not exist.

use super::{Signed, error_page, failed};
use crate::api::ApiState;
use crate::api::json::visible_document;
use crate::auth::Identity;
use crate::config::Settings;
use crate::domain::{DecidedBy, Decision, DocumentId, MailboxId};
use crate::extract::{Extraction, MediaType, Page};
use crate::store::DocumentRow;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::collections::BTreeSet;

/// Pages shown as images at most (later pages are in the delivered PDF).
pub const MAX_PAGE_IMAGES: u32 = 5;

/// The routes.
pub fn routes() -> Router<ApiState> {
    Router::new().route("/dokumente/{id}/seite/{page}", get(page_image))
}

/// `GET /dokumente/{id}/seite/{n}`: page `n` of the original as PNG.
async fn page_image(
    Signed(who): Signed,
    State(s): State<ApiState>,
    Path((id, page)): Path<(String, String)>,
) -> Response {
    let not_found = || error_page(Some(&who), StatusCode::NOT_FOUND, "Seite nicht gefunden.");
    let Some(id) = DocumentId::parse(&id) else {
        return not_found();
    };
    let Some(page) = page
        .trim_end_matches(".png")
        .parse::<u32>()
        .ok()
        .filter(|p| (1..=MAX_PAGE_IMAGES).contains(p))
    else {
        return not_found();
    };
    let doc = match visible_document(&s, &who, &id).await {
        Ok(d) => d,
        Err(_) => return not_found(),
    };
    let Some(media) = MediaType::from_mime(&doc.media_type).filter(|m| has_pages(*m)) else {
        return not_found();
    };
    let pages = extraction_of(&s, &id)
        .await
        .map(|e| e.page_count.max(e.pages.len() as u32))
        .unwrap_or(0);
    if pages > 0 && page > pages {
        return not_found();
    }
    let path = s.pipeline.blobs.path(&doc.sha256);
    // One worker process per page image: no more at once than the machine has cores.
    let Ok(_permit) = s.page_images.acquire().await else {
        return failed(&who, "page image limiter closed");
    };
    match s.pipeline.extractor.page_image(&path, media, page).await {
        Ok(png) => (
            [
                (header::CONTENT_TYPE, "image/png"),
                (header::CACHE_CONTROL, "private, max-age=600"),
            ],
            png,
        )
            .into_response(),
        Err(crate::extract::ExtractError::NoPageImage(_)) => not_found(),
        Err(e) => {
            tracing::warn!(document = %id, page, error = %e, "page image failed");
            error_page(
                Some(&who),
                StatusCode::INTERNAL_SERVER_ERROR,
                "Das Seitenbild konnte nicht erzeugt werden.",
            )
        }
    }
}

/// Whether documents of this type have page images (scans and PDFs).
pub fn has_pages(media: MediaType) -> bool {
    matches!(
        media,
        MediaType::Pdf | MediaType::Png | MediaType::Jpeg | MediaType::Tiff
    )
}

/// A mailbox as people read it: "63 Bauordnung".
pub fn mailbox_label(settings: &Settings, id: &MailboxId) -> String {
    match settings.mailbox(id) {
        Some(m) => format!("{} {}", m.id, m.name),
        None => id.to_string(),
    }
}

/// A decimal as Germans write it, two places: `0,75`.
pub fn german_decimal(x: f64) -> String {
    format!("{x:.2}").replace('.', ",")
}

/// The explanation of a decision in German sentences.
pub fn explanation_sentences(settings: &Settings, d: &Decision) -> Vec<String> {
    let e = &d.explanation;
    let mut out = Vec::new();
    let label = |m: &MailboxId| mailbox_label(settings, m);
    match (&d.mailbox, d.decided_by) {
        (Some(m), DecidedBy::Person) => out.push(format!(
            "Eine Person hat das Dokument {} zugeordnet.",
            label(m)
        )),
        (Some(m), by) => {
            let how = match by {
                DecidedBy::Rule => " nach den Regeln",
                DecidedBy::Model => " nach dem Modell",
                DecidedBy::Combined => " nach Regeln und Modell übereinstimmend",
                DecidedBy::Recipient => " nach der Empfängeradresse der E-Mail",
                DecidedBy::Invoice => " nach der Leitweg-ID der E-Rechnung",
                DecidedBy::Person | DecidedBy::Nothing => "",
            };
            out.push(format!(
                "Vorschlag: {}{how} (Sicherheit {}).",
                label(m),
                german_decimal(d.confidence)
            ));
        }
        (None, _) if e.rules.is_empty() && e.candidates.is_empty() => out.push(
            "Es gibt keinen Vorschlag: das Dokument enthält keine verwertbaren Hinweise.".into(),
        ),
        (None, _) => out.push("Es gibt keinen Vorschlag; eine Person entscheidet.".into()),
    }
    // The clerk inside the mailbox (its assignment table), when it is this mailbox's.
    if let Some(c) = e
        .clerk
        .as_ref()
        .filter(|c| d.mailbox.as_ref() == Some(&c.mailbox))
    {
        out.push(format!("{}.", c.sentence()));
    }
    if let Some(b) = &e.basis {
        out.push(b.clone());
    }
    for hit in e.rules.iter().take(6) {
        if hit.zone == crate::classify::sender::ZONE {
            // Sender memory: the hit's own sentence names the key, the counts and the mailbox.
            out.push(format!(
                "{}; das spricht für {}.",
                hit.rule,
                label(&hit.mailbox)
            ));
            continue;
        }
        let words = hit
            .matched
            .iter()
            .map(|w| format!("„{w}“"))
            .collect::<Vec<_>>()
            .join(", ");
        let wo = hit
            .position
            .as_deref()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default();
        let dir = if hit.weight >= 0.0 {
            "spricht für"
        } else {
            "spricht gegen"
        };
        out.push(format!(
            "Regel „{}“ fand {words} im Bereich {}{wo}; das {dir} {}.",
            hit.rule,
            zone_de(&hit.zone),
            label(&hit.mailbox)
        ));
    }
    let words: Vec<String> = e
        .model_features
        .iter()
        .filter(|f| f.weight > 0.0)
        .take(5)
        .map(|f| format!("„{}“", f.feature))
        .collect();
    if !words.is_empty() {
        let version = e
            .model_version
            .as_deref()
            .map(|v| format!(" (Version {v})"))
            .unwrap_or_default();
        out.push(format!(
            "Das Modell{version} stützt sich vor allem auf {}.",
            words.join(", ")
        ));
    }
    if d.needs_review {
        if let Some(r) = &e.review_reason {
            out.push(r.clone());
        }
        if e.threshold > 0.0 && d.confidence < e.threshold {
            out.push(format!(
                "Die Sicherheit {} liegt unter der Schwelle {} für die automatische Zustellung.",
                german_decimal(d.confidence),
                german_decimal(e.threshold)
            ));
        }
    }
    out
}

/// A rule zone's name in German.
fn zone_de(zone: &str) -> &str {
    match zone {
        "address" => "Anschriftfeld",
        "subject" => "Betreff",
        "page1" => "Seite 1",
        "any" => "gesamter Text",
        other => other,
    }
}

/// A word reduced to what comparing needs: lower case, letters and digits only.
pub fn norm(word: &str) -> String {
    word.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The words that decided: what the rules matched and the model's strongest single words.
pub fn deciding_words(d: &Decision) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for hit in d.explanation.rules.iter().filter(|h| h.weight > 0.0) {
        for m in &hit.matched {
            for w in m.split_whitespace() {
                let n = norm(w);
                if n.chars().count() >= 2 {
                    set.insert(n);
                }
            }
        }
    }
    for f in d
        .explanation
        .model_features
        .iter()
        .filter(|f| f.weight > 0.0)
        .take(8)
    {
        let n = norm(&f.feature);
        // Whole words only: character n-grams and word pairs mark nothing useful.
        if !f.feature.contains(' ') && n.chars().count() >= 4 && n == f.feature.to_lowercase() {
            set.insert(n);
        }
    }
    set
}

/// A box on a page image, in the page's units.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    /// Left edge.
    pub x: i64,
    /// Top edge.
    pub y: i64,
    /// Width.
    pub w: i64,
    /// Height.
    pub h: i64,
    /// The word, for the tooltip and screen readers.
    pub word: String,
}

/// One page as the desk shows it.
#[derive(Debug, Clone)]
pub struct PageView {
    /// 1-based number.
    pub number: u32,
    /// The image's URL.
    pub src: String,
    /// The page's size in its units (the SVG's view box), when known from OCR.
    pub width: i64,
    /// Height.
    pub height: i64,
    /// The deciding words on this page.
    pub marks: Vec<Mark>,
}

/// A piece of text, marked or not.
#[derive(Debug, Clone)]
pub struct Span {
    /// The text.
    pub text: String,
    /// Whether it is a deciding word.
    pub marked: bool,
}

/// The pages to show and, when there are no page images or no word boxes, the text with its
/// deciding words marked.
pub fn page_views(
    doc: &DocumentRow,
    extraction: Option<&Extraction>,
    decision: Option<&Decision>,
) -> (Vec<PageView>, Vec<Vec<Span>>) {
    let words = decision.map(deciding_words).unwrap_or_default();
    let media = MediaType::from_mime(&doc.media_type);
    let pages: &[Page] = extraction.map(|e| e.pages.as_slice()).unwrap_or(&[]);
    let mut views = Vec::new();
    if media.is_some_and(has_pages) {
        let count = extraction
            .map(|e| e.page_count.max(e.pages.len() as u32))
            .unwrap_or(1)
            .clamp(1, MAX_PAGE_IMAGES);
        for n in 1..=count {
            let page = pages.iter().find(|p| p.number == n);
            let (width, height, marks) = match page {
                Some(p) if !p.words.is_empty() && p.width > 0.0 && p.height > 0.0 => (
                    p.width as i64,
                    p.height as i64,
                    p.words
                        .iter()
                        .filter(|w| words.contains(&norm(&w.text)))
                        .map(|w| Mark {
                            x: w.x as i64,
                            y: w.y as i64,
                            w: w.w.max(1.0) as i64,
                            h: w.h.max(1.0) as i64,
                            word: w.text.clone(),
                        })
                        .collect(),
                ),
                _ => (0, 0, Vec::new()),
            };
            views.push(PageView {
                number: n,
                src: format!("/dokumente/{}/seite/{n}", doc.id),
                width,
                height,
                marks,
            });
        }
    }
    // Text with marks where the page images carry no word boxes.
    let boxed = views.iter().any(|v| v.width > 0);
    let text = if boxed {
        Vec::new()
    } else {
        pages
            .iter()
            .take(MAX_PAGE_IMAGES as usize)
            .map(|p| mark_text(&p.text, &words))
            .collect()
    };
    (views, text)
}

/// Splits `text` into spans, marking the deciding words (whitespace kept as it stands).
pub fn mark_text(text: &str, words: &BTreeSet<String>) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::new();
    let mut push = |s: &str, marked: bool| match out.last_mut() {
        Some(last) if last.marked == marked && !marked => last.text.push_str(s),
        _ => out.push(Span {
            text: s.to_string(),
            marked,
        }),
    };
    let mut rest = text;
    while !rest.is_empty() {
        let ws = rest.len() - rest.trim_start().len();
        if ws > 0 {
            push(&rest[..ws], false);
            rest = &rest[ws..];
            continue;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = &rest[..end];
        push(word, words.contains(&norm(word)));
        rest = &rest[end..];
    }
    out
}

/// The waiting time since `created_at` in German ("3 Std. 5 Min.").
pub fn waiting_de(created_at: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(created_at) else {
        return String::new();
    };
    let mins = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_minutes()
        .max(0);
    match mins {
        0 => "unter 1 Min.".into(),
        m if m < 60 => format!("{m} Min."),
        m if m < 24 * 60 => format!("{} Std. {} Min.", m / 60, m % 60),
        m => format!("{} Tg. {} Std.", m / (24 * 60), (m / 60) % 24),
    }
}

/// A time stamp as people read it, local time ("04.12.2026 14:05").
pub fn time_de(at: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(at)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%d.%m.%Y %H:%M")
                .to_string()
        })
        .unwrap_or_else(|_| at.to_string())
}

/// One line of the capture record as the desk shows it.
#[derive(Debug, Clone)]
pub struct Fact {
    /// "Eingang", "Auflösung", ...
    pub label: &'static str,
    /// The value, German.
    pub value: String,
}

/// The capture record (Erfassungsprotokoll) as German lines.
pub fn capture_facts(r: &crate::capture::CaptureRecord) -> Vec<Fact> {
    let list = |pages: &[u32], none: &str, suffix: &str| {
        if pages.is_empty() {
            none.to_string()
        } else {
            let n: Vec<String> = pages.iter().map(u32::to_string).collect();
            format!(
                "{} {}{suffix}",
                if pages.len() == 1 { "Seite" } else { "Seiten" },
                n.join(", ")
            )
        }
    };
    let mut facts = vec![
        Fact {
            label: "Eingang",
            value: format!("{} (maßgeblich für Fristen)", time_de(&r.received_at)),
        },
        Fact {
            label: "Kanal",
            value: r.channel.german().to_string(),
        },
        Fact {
            label: "Quelle",
            value: r.source.clone(),
        },
    ];
    if let Some(stack) = &r.stack {
        facts.push(Fact {
            label: "Stapel",
            value: format!("{}, Seiten {}", stack.file, stack.pages),
        });
    }
    if let Some(dpi) = r.dpi {
        facts.push(Fact {
            label: "Auflösung",
            value: format!("{dpi} dpi"),
        });
    }
    if let Some(c) = r.colour {
        facts.push(Fact {
            label: "Farbmodus",
            value: c.german().to_string(),
        });
    }
    facts.extend([
        Fact {
            label: "Seiten",
            value: r.pages.to_string(),
        },
        Fact {
            label: "SHA-256 Original",
            value: r.sha256_original.clone(),
        },
        Fact {
            label: "SHA-256 zugestellt",
            value: r.sha256_rendition.clone(),
        },
    ]);
    if r.stack.is_some() {
        facts.push(Fact {
            label: "Leere Seiten entfernt",
            value: list(&r.quality.blank_pages_removed, "keine", " des Stapels"),
        });
    }
    if r.quality.pages_checked > 0 {
        facts.push(Fact {
            label: "Wenig lesbarer Text",
            value: list(&r.quality.poorly_read_pages, "keine Seite", ""),
        });
    }
    facts.extend([
        Fact {
            label: "Sichtkontrolle",
            value: if r.visual_check { "ja" } else { "nein" }.to_string(),
        },
        Fact {
            label: "Siegel (SHA-256)",
            value: r.seal(),
        },
    ]);
    facts
}

/// The document's stored extraction, if readable.
pub async fn extraction_of(s: &ApiState, id: &DocumentId) -> Option<Extraction> {
    let json = s.pipeline.store.extraction(id).await.ok().flatten()?;
    serde_json::from_str(&json).ok()
}

/// A German 403 page unless `who` may act as the Poststelle.
pub fn unless_poststelle(who: &Identity) -> Option<Response> {
    (!who.is_poststelle()).then(|| {
        error_page(
            Some(who),
            StatusCode::FORBIDDEN,
            "Diese Seite ist der Poststelle vorbehalten.",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Explanation, FeatureWeight, RuleHit};

    fn decision() -> Decision {
        Decision {
            mailbox: MailboxId::parse("63"),
            confidence: 0.62,
            decided_by: DecidedBy::Combined,
            needs_review: true,
            explanation: Explanation {
                rules: vec![RuleHit {
                    rule: "bauantrag".into(),
                    mailbox: MailboxId::parse("63").expect("id"),
                    weight: 2.0,
                    zone: "subject".into(),
                    matched: vec!["Bauantrag Wintergarten".into()],
                    position: None,
                }],
                model_features: vec![
                    FeatureWeight {
                        feature: "flurstück".into(),
                        weight: 0.4,
                    },
                    FeatureWeight {
                        feature: "ntr".into(),
                        weight: 0.3,
                    },
                ],
                threshold: 0.75,
                ..Default::default()
            },
        }
    }

    #[test]
    fn deciding_words_come_from_rules_and_whole_model_words() {
        let w = deciding_words(&decision());
        let w: Vec<&str> = w.iter().map(String::as_str).collect();
        assert_eq!(w, ["bauantrag", "flurstück", "wintergarten"]);
    }

    #[test]
    fn text_marks_keep_every_character() {
        let words = deciding_words(&decision());
        let text = "Betreff: Bauantrag für einen\nWintergarten, Flurstück 88";
        let spans = mark_text(text, &words);
        let joined: String = spans.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(joined, text);
        let marked: Vec<&str> = spans
            .iter()
            .filter(|s| s.marked)
            .map(|s| s.text.as_str())
            .collect();
        assert_eq!(marked, ["Bauantrag", "Wintergarten,", "Flurstück"]);
    }

    #[test]
    fn sender_memory_is_explained_in_its_own_sentence() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/musterstadt.toml");
        let settings = Settings::load_with_env(&path, &[]).expect("example config");
        let mut d = decision();
        d.explanation.rules.push(RuleHit {
            rule: "Absender bekannt: 2 von 2 früheren Schreiben mit der IBAN DE89…3000 gingen an 20 (Kämmerei)".into(),
            mailbox: MailboxId::parse("20").expect("id"),
            weight: 4.55,
            zone: crate::classify::sender::ZONE.into(),
            matched: vec!["DE89370400440532013000".into()],
            position: None,
        });
        let sentences = explanation_sentences(&settings, &d);
        assert!(
            sentences.contains(
                &"Absender bekannt: 2 von 2 früheren Schreiben mit der IBAN DE89…3000 gingen an 20 (Kämmerei); das spricht für 20 Kämmerei.".to_string()
            ),
            "{sentences:?}"
        );
        assert!(
            !sentences.iter().any(|s| s.contains("im Bereich sender")),
            "{sentences:?}"
        );
    }

    #[test]
    fn the_clerk_is_explained_for_its_own_mailbox_only() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/musterstadt.toml");
        let settings = Settings::load_with_env(&path, &[]).expect("example config");
        let mut d = decision();
        d.explanation.clerk = Some(crate::domain::ClerkAssignment {
            mailbox: MailboxId::parse("63").expect("id"),
            id: "schmidt".into(),
            name: "Frau Schmidt".into(),
            reason: "Nachnamen A–K: „Albers“".into(),
        });
        let sentences = explanation_sentences(&settings, &d);
        assert_eq!(
            sentences[1], "Sachbearbeitung: Frau Schmidt (Nachnamen A–K: „Albers“).",
            "{sentences:?}"
        );
        d.mailbox = MailboxId::parse("22");
        let sentences = explanation_sentences(&settings, &d);
        assert!(
            !sentences.iter().any(|s| s.contains("Sachbearbeitung")),
            "{sentences:?}"
        );
    }
}
