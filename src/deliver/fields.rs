//! The fields a target can map to its own properties, and `{field}` templates over them.
//!
//! Field names are the same for every connector, so one document carries the same facts into
//! any DMS: `document_id`, `mailbox`, `subject`, `sender_name`, `iban`, `invoice_number`, ...

use super::DeliveryItem;

/// Every field name a template or property mapping may use.
pub const NAMES: &[&str] = &[
    "document_id",
    "mailbox",
    "mailbox_name",
    "original_name",
    "file_name",
    "ext",
    "media_type",
    "title",
    "received_at",
    "sender_name",
    "sender_address",
    "letter_date",
    "subject",
    "file_references",
    "their_reference",
    "kassenzeichen",
    "customer_numbers",
    "ibans",
    "amounts",
    "invoice_format",
    "invoice_number",
    "invoice_date",
    "invoice_supplier",
    "leitweg_id",
    "invoice_currency",
    "invoice_net_amount",
    "invoice_tax_amount",
    "invoice_gross_amount",
    "invoice_due_amount",
    "capture_received_at",
    "capture_channel",
    "capture_source",
    "capture_stack",
    "capture_dpi",
    "capture_colour",
    "capture_pages",
    "capture_sha256_original",
    "capture_sha256_rendition",
    "capture_blank_pages_removed",
    "capture_poorly_read_pages",
    "capture_visual_check",
    "capture_seal",
    "clerk",
    "clerk_id",
];

/// The values of a field for one document (empty when the document has none; lists for
/// multi-valued facts such as file references or IBANs).
pub fn values(item: &DeliveryItem, name: &str) -> Vec<String> {
    let m = &item.metadata;
    let one = |v: &Option<String>| v.iter().cloned().collect::<Vec<_>>();
    let inv = |f: fn(&crate::domain::InvoiceInfo) -> &Option<String>| {
        m.invoice.as_ref().map(|i| one(f(i))).unwrap_or_default()
    };
    match name {
        "document_id" => vec![item.document_id.as_str().to_string()],
        "mailbox" => vec![item.mailbox.as_str().to_string()],
        "mailbox_name" => vec![item.mailbox_name.clone()],
        "original_name" => vec![item.original_name.clone()],
        "file_name" => vec![format!("{}.{}", item.document_id.as_str(), item.extension)],
        "ext" => vec![item.extension.clone()],
        "media_type" => vec![item.media_type.clone()],
        "title" => vec![
            m.subject
                .clone()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| item.original_name.clone()),
        ],
        "received_at" => item
            .sidecar
            .get("received_at")
            .and_then(|v| v.as_str())
            .map(|s| vec![s.to_string()])
            .unwrap_or_default(),
        "sender_name" => one(&m.sender_name),
        "sender_address" => one(&m.sender_address),
        "letter_date" => one(&m.letter_date),
        "subject" => one(&m.subject),
        "file_references" => m.file_references.clone(),
        "their_reference" => one(&m.their_reference),
        "kassenzeichen" => m.kassenzeichen.clone(),
        "customer_numbers" => m.customer_numbers.clone(),
        "ibans" => m.ibans.clone(),
        "amounts" => m.amounts.clone(),
        "invoice_format" => m.invoice.iter().map(|i| i.format.clone()).collect(),
        "invoice_number" => inv(|i| &i.number),
        "invoice_date" => inv(|i| &i.date),
        "invoice_supplier" => inv(|i| &i.supplier),
        "leitweg_id" => inv(|i| &i.leitweg_id),
        "invoice_currency" => inv(|i| &i.currency),
        "invoice_net_amount" => inv(|i| &i.net_amount),
        "invoice_tax_amount" => inv(|i| &i.tax_amount),
        "invoice_gross_amount" => inv(|i| &i.gross_amount),
        "invoice_due_amount" => inv(|i| &i.due_amount),
        "clerk" => item.clerk.iter().map(|c| c.name.clone()).collect(),
        "clerk_id" => item.clerk.iter().map(|c| c.id.clone()).collect(),
        n if n.starts_with("capture_") => capture_values(item, &n["capture_".len()..]),
        _ => Vec::new(),
    }
}

/// The values of a capture-record field (the sidecar's `capture`, see [`crate::capture`]).
fn capture_values(item: &DeliveryItem, name: &str) -> Vec<String> {
    let Some(c) = item.sidecar.get("capture").filter(|c| c.is_object()) else {
        return Vec::new();
    };
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    };
    let field = |k: &str| c.get(k).and_then(text).into_iter().collect::<Vec<_>>();
    let list = |k: &str| {
        c.pointer(k)
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(text).collect())
            .unwrap_or_default()
    };
    match name {
        "received_at" | "channel" | "source" | "dpi" | "colour" | "pages" | "sha256_original"
        | "sha256_rendition" | "visual_check" => field(name),
        "stack" => c
            .get("stack")
            .and_then(|s| {
                Some(format!(
                    "{} S. {}",
                    text(s.get("file")?)?,
                    text(s.get("pages")?)?
                ))
            })
            .into_iter()
            .collect(),
        "blank_pages_removed" => list("/quality/blank_pages_removed"),
        "poorly_read_pages" => list("/quality/poorly_read_pages"),
        "seal" => serde_json::from_value::<crate::capture::CaptureRecord>(c.clone())
            .map(|r| vec![r.seal()])
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Checks a template; `Err(name)` for the first unknown placeholder.
pub fn check_template(t: &str) -> Result<(), String> {
    let mut rest = t;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            return Err(after.to_string());
        };
        let name = &after[..end];
        if !NAMES.contains(&name) {
            return Err(name.to_string());
        }
        rest = &after[end + 1..];
    }
    Ok(())
}

/// Fills a template; multi-valued fields are joined with ", ", missing ones are empty.
/// `escape` is applied to each value (e.g. percent-encoding for URLs).
pub fn render_with(t: &str, item: &DeliveryItem, escape: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(t.len() + 32);
    let mut rest = t;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                out.push_str(&escape(&values(item, &after[..end]).join(", ")));
                rest = &after[end + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Fills a template without escaping.
pub fn render(t: &str, item: &DeliveryItem) -> String {
    render_with(t, item, str::to_string)
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for URL path segments and
/// query values).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::{DocumentId, DocumentMetadata, MailboxId};

    pub(crate) fn item() -> DeliveryItem {
        DeliveryItem {
            document_id: DocumentId::parse("01890a5d-ac96-774b-bcce-b302099a8057").expect("id"),
            mailbox: MailboxId::parse("63").expect("mailbox"),
            mailbox_name: "Bauordnung".into(),
            original_name: "scan 1.pdf".into(),
            media_type: "application/pdf".into(),
            extension: "pdf".into(),
            bytes: b"%PDF-1.4 test".to_vec(),
            sidecar: serde_json::json!({"received_at": "2026-12-01T10:00:00Z"}),
            metadata: DocumentMetadata {
                subject: Some("Bauantrag Flurstück 88".into()),
                file_references: vec!["63-123/26".into(), "63-124/26".into()],
                ..Default::default()
            },
            clerk: None,
        }
    }

    #[test]
    fn templates_fill_known_fields_and_reject_unknown_ones() {
        let i = item();
        assert_eq!(
            render("{mailbox}/{document_id}.{ext}", &i),
            "63/01890a5d-ac96-774b-bcce-b302099a8057.pdf"
        );
        assert_eq!(render("{file_references}", &i), "63-123/26, 63-124/26");
        assert_eq!(render("{sender_name}", &i), "");
        assert_eq!(render("{title}", &i), "Bauantrag Flurstück 88");
        assert_eq!(
            render_with("/x/{original_name}", &i, percent_encode),
            "/x/scan%201.pdf"
        );
        assert_eq!(check_template("a {subjekt} b"), Err("subjekt".into()));
        assert!(check_template("{subject}-{document_id}").is_ok());
        for n in NAMES {
            // Every advertised name is handled (document_id etc. never come back empty).
            let _ = values(&i, n);
        }
        assert!(values(&i, "nonsense").is_empty());
        assert!(values(&i, "capture_dpi").is_empty(), "no record, no value");
    }

    #[test]
    fn capture_fields_come_from_the_sidecars_record() {
        let mut i = item();
        let record = crate::capture::CaptureRecord {
            version: 1,
            document_id: i.document_id.as_str().into(),
            received_at: "2026-12-07T08:15:00.000Z".into(),
            channel: crate::capture::Channel::Stack,
            source: "Poststelle EG".into(),
            stack: Some(crate::capture::StackOrigin {
                id: "s1".into(),
                file: "stapel.pdf".into(),
                pages: "3-5".into(),
                sha256: "cc".into(),
            }),
            dpi: Some(300),
            colour: Some(crate::extract::scan::ColourMode::Gray),
            pages: 2,
            sha256_original: "aa".into(),
            sha256_rendition: "bb".into(),
            rendition_media_type: "application/pdf".into(),
            quality: crate::capture::QualityChecks {
                pages_checked: 2,
                blank_pages_removed: vec![4],
                poorly_read_pages: vec![2],
            },
            visual_check: true,
            recorded_at: "2026-12-07T08:16:00.000Z".into(),
        };
        i.sidecar["capture"] = serde_json::json!(record);
        assert_eq!(
            render("{capture_received_at}", &i),
            "2026-12-07T08:15:00.000Z"
        );
        assert_eq!(
            render("{capture_channel}/{capture_source}", &i),
            "stack/Poststelle EG"
        );
        assert_eq!(
            render("{capture_dpi} {capture_colour} {capture_pages}", &i),
            "300 gray 2"
        );
        assert_eq!(render("{capture_stack}", &i), "stapel.pdf S. 3-5");
        assert_eq!(values(&i, "capture_sha256_rendition"), ["bb"]);
        assert_eq!(values(&i, "capture_blank_pages_removed"), ["4"]);
        assert_eq!(values(&i, "capture_poorly_read_pages"), ["2"]);
        assert_eq!(values(&i, "capture_visual_check"), ["true"]);
        assert_eq!(values(&i, "capture_seal"), [record.seal()]);
    }
}
