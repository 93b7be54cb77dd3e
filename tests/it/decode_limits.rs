//! Sizes are checked before decoding (issue 13), through the running daemon: a PDF page too
//! large to render is quarantined before `pdftoppm` draws it, an embedded ZUGFeRD stream that
//! inflates to 2 GB (a compression bomb of a few MB) is left unread while the letter around it
//! is routed, and an e-mail whose text body alone exceeds the decoded-size limit is
//! quarantined with its reason.

use crate::harness::*;
use lopdf::{Document, Object, Stream, dictionary};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(240);

/// A PDF whose one page is 20000 × 20000 pt and carries no text (a scan to be rendered).
fn huge_page_pdf() -> Vec<u8> {
    let mut doc = Document::with_version("1.4");
    let pages = doc.new_object_id();
    let content = doc.add_object(Stream::new(
        dictionary! {},
        b"0 0 0 rg 100 100 500 500 re f".to_vec(),
    ));
    let page = doc.add_object(dictionary! {
        "Type" => "Page",
        "Parent" => pages,
        "MediaBox" => vec![0.into(), 0.into(), 20000.into(), 20000.into()],
        "Contents" => content,
    });
    doc.objects.insert(
        pages,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1,
        }),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages });
    doc.trailer.set("Root", catalog);
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("save");
    out
}

/// The harness's Bauantrag letter with a `factur-x.xml` attached that inflates to 2 GiB of
/// zeros (deflated here, about 2 MB).
fn letter_with_invoice_bomb() -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    let zeros = vec![0u8; 8 * 1024 * 1024];
    for _ in 0..256 {
        z.write_all(&zeros).expect("deflate");
    }
    let bomb = z.finish().expect("deflate");
    assert!(bomb.len() < 16 * 1024 * 1024, "{}", bomb.len());
    let mut doc = Document::load_mem(&bauantrag_pdf()).expect("letter");
    let mut file = Stream::new(
        dictionary! { "Type" => "EmbeddedFile", "Subtype" => "text/xml", "Filter" => "FlateDecode" },
        bomb,
    );
    file.allows_compression = false;
    let file = doc.add_object(file);
    let spec = doc.add_object(dictionary! {
        "Type" => "Filespec",
        "F" => Object::string_literal("factur-x.xml"),
        "UF" => Object::string_literal("factur-x.xml"),
        "AFRelationship" => "Data",
        "EF" => dictionary! { "F" => file },
    });
    let root = doc
        .trailer
        .get(b"Root")
        .and_then(Object::as_reference)
        .expect("root");
    doc.get_dictionary_mut(root)
        .expect("catalog")
        .set("AF", vec![spec.into()]);
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("save");
    out
}

/// An e-mail whose plain text body is 1.5 MB (base64 encoded), no attachment.
fn long_mail() -> Vec<u8> {
    use base64::Engine as _;
    let body = "Sehr geehrte Damen und Herren, hiermit beantrage ich eine Baugenehmigung. "
        .repeat(1536 * 1024 / 74);
    let b64 = base64::engine::general_purpose::STANDARD.encode(body.as_bytes());
    let mut m = String::from(
        "From: a@example.org\r\nTo: bauordnung@musterstadt.de\r\nSubject: Antrag\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n",
    );
    for line in b64.as_bytes().chunks(76) {
        m.push_str(std::str::from_utf8(line).expect("ascii"));
        m.push_str("\r\n");
    }
    m.into_bytes()
}

#[test]
fn sizes_are_checked_before_decoding_pages_invoices_and_mail_bodies() {
    let install = Install::new();
    let _d = install.serve(&[("POSTSTELLE__EXTRACT__MAIL_MAX_DECODED_MB", "1")]);
    install.drop_file("riesig.pdf", &huge_page_pdf());
    install.drop_file("rechnung.pdf", &letter_with_invoice_bomb());
    install.drop_file("lang.eml", &long_mail());
    let docs = wait_for("all three settled", LONG, || {
        let docs = install.documents();
        (docs.len() == 3
            && docs.iter().all(|d| {
                ["delivered", "review", "quarantined"].contains(&d["state"].as_str().unwrap_or(""))
            }))
        .then_some(docs)
    });
    let by_name = |n: &str| {
        docs.iter()
            .find(|d| d["original_name"] == n)
            .unwrap_or_else(|| panic!("{n}: {docs:#?}"))
            .clone()
    };
    // The reason file beside the quarantined file (its name may carry a prefix).
    let reason = |n: &str| {
        let file = std::fs::read_dir(install.path("quarantine"))
            .expect("quarantine")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(&format!("{n}.reason.txt")))
            .unwrap_or_else(|| panic!("no reason file for {n}"));
        std::fs::read_to_string(file).expect("reason")
    };
    // The page was measured, not drawn (at 300 dpi it would be 83334 × 83334 pixels).
    assert_eq!(by_name("riesig.pdf")["state"], "quarantined");
    let r = reason("riesig.pdf");
    assert!(
        r.contains("Seite 1") && r.contains("83334 × 83334") && r.contains("nicht gerendert"),
        "{r}"
    );
    // The bomb is not inflated: the letter is read and routed as a letter, not quarantined
    // (inflating 2 GB would exceed the worker's memory limit).
    let letter = by_name("rechnung.pdf");
    assert_ne!(letter["state"], "quarantined", "{letter}");
    // The mail body alone is over the limit.
    assert_eq!(by_name("lang.eml")["state"], "quarantined");
    let r = reason("lang.eml");
    assert!(
        r.contains("Die E-Mail ist entpackt (Text und Anhänge) größer als die erlaubten 1 MB."),
        "{r}"
    );
}
