//! End to end through the daemon: scans are delivered as searchable PDFs (page images plus an
//! OCR text layer, checked with poppler's `pdftotext`, `pdfimages` and `pdftoppm`), metadata
//! lands in the sidecar, and e-invoices (XRechnung UBL and CII, ZUGFeRD / Factur-X PDF) are
//! routed by their Leitweg-ID (`[einvoice] routes` of config/musterstadt.toml). The daemon
//! runs in-process, or as a child process where the test kills it.

use crate::harness::*;
use lopdf::{Object, Stream, dictionary};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(180);

fn sidecar(doc: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(doc.with_extension("json")).expect("sidecar"))
        .expect("json")
}

fn tool(name: &str, args: &[&str], file: &Path, tail: &[&str]) -> String {
    let out = Command::new(name)
        .args(args)
        .arg(file)
        .args(tail)
        .output()
        .expect(name);
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn bauantrag_pages() -> (image::GrayImage, image::GrayImage) {
    let page1 = bauantrag_pdf();
    let page2 = letter_pdf(&[
        (25.0, 40.0, 14.0, "Baubeschreibung"),
        (
            25.0,
            55.0,
            11.0,
            "Glasdach auf Aluminiumprofilen, Grundfläche 18 Quadratmeter.",
        ),
        (
            25.0,
            62.0,
            11.0,
            "Fundament aus Beton, Entwässerung über die Dachrinne.",
        ),
    ]);
    (noisy(render(&page1, 300), 8), noisy(render(&page2, 300), 8))
}

/// Share of dark pixels on page 1 of a PDF rendered at 50 dpi.
fn ink(pdf: &Path) -> f64 {
    let out = Command::new("pdftoppm")
        .args(["-gray", "-r", "50", "-f", "1", "-l", "1"])
        .arg(pdf)
        .output()
        .expect("pdftoppm");
    assert!(out.status.success());
    let img = image::load_from_memory(&out.stdout)
        .expect("pgm")
        .to_luma8();
    let dark = img.pixels().filter(|p| p.0[0] < 128).count();
    dark as f64 / (img.width() * img.height()) as f64
}

#[test]
fn a_scanned_tiff_is_delivered_as_a_searchable_pdf_with_metadata() {
    let d = spawn_app(&[]);
    let install = &*d;
    let (p1, p2) = bauantrag_pages();
    let scan = tiff(&[&p1, &p2]);
    install.drop_file("scan-0002.tif", &scan);
    let delivered = wait_for("delivery", LONG, || {
        let d = install.delivered();
        (d.len() == 1).then_some(d)
    });
    let (mailbox, pdf) = &delivered[0];
    assert_eq!(mailbox, "63");
    assert_eq!(pdf.extension().and_then(|e| e.to_str()), Some("pdf"));
    let bytes = std::fs::read(pdf).expect("read");
    assert!(bytes.starts_with(b"%PDF-"));
    // The text layer carries the OCR text of both pages (routing read only page 1).
    let text = tool("pdftotext", &["-enc", "UTF-8"], pdf, &["-"]);
    let text = text.replace("-\n", "");
    assert!(text.contains("Wintergarten"), "{text}");
    assert!(text.contains("Bauordnungsamt"), "{text}");
    assert!(
        text.contains("Baubeschreibung"),
        "page 2 is searchable too: {text}"
    );
    let pages = tool("pdfinfo", &[], pdf, &[]);
    assert!(
        pages
            .lines()
            .any(|l| l.starts_with("Pages:") && l.ends_with(" 2")),
        "{pages}"
    );
    // The page images are still there: one image per page, and page 1 is not blank.
    let images = tool("pdfimages", &["-list"], pdf, &[]);
    assert_eq!(images.lines().skip(2).count(), 2, "{images}");
    let share = ink(pdf);
    assert!(share > 0.002 && share < 0.5, "page 1 ink share {share}");
    // The sidecar names the delivered rendition and carries the letter's metadata.
    let sc = sidecar(pdf);
    assert_eq!(sc["delivered"]["media_type"], "application/pdf");
    assert_eq!(
        sc["media_type"], "image/tiff",
        "the original's type stays recorded"
    );
    assert_eq!(
        sc["delivered"]["sha256"].as_str(),
        Some(sha256_hex(&bytes).as_str()),
        "the searchable PDF is a stored blob"
    );
    let meta = &sc["metadata"];
    assert_eq!(meta["letter_date"], "2025-02-03", "{meta}");
    assert!(
        meta["sender_name"]
            .as_str()
            .unwrap_or_default()
            .contains("Mustermann"),
        "{meta}"
    );
    assert!(
        meta["subject"]
            .as_str()
            .unwrap_or_default()
            .contains("Wintergarten"),
        "{meta}"
    );
    // The API's document view shows the metadata too.
    let id = sc["document_id"].as_str().expect("id").to_string();
    let view: serde_json::Value = reqwest::blocking::Client::new()
        .get(d.url(&format!("/api/documents/{id}")))
        .bearer_auth(&install.token)
        .send()
        .expect("show")
        .json()
        .expect("json");
    assert_eq!(view["metadata"]["letter_date"], "2025-02-03", "{view}");
}

/// The scanned letter's metadata (sender, date, subject) is read whichever Helvetica clone the
/// scan was rendered with: DejaVu Sans, Liberation Sans and Nimbus Sans (the packages
/// deploy/test.sh installs), read by the sandboxed workers and routed's zones and metadata as
/// in the test above.
#[test]
fn the_scanned_letters_sender_is_read_under_each_font() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files: Vec<_> = TEST_FONTS
        .iter()
        .map(|font| {
            let page1 = noisy(render_with(&bauantrag_pdf(), 300, *font), 8);
            let p = dir
                .path()
                .join(format!("{}.tif", font.family.replace(' ', "-")));
            std::fs::write(&p, tiff(&[&page1])).expect("write");
            (p, poststelle::extract::MediaType::Tiff)
        })
        .collect();
    let markers = address_markers();
    for (font, ex) in TEST_FONTS.iter().zip(extract_all(&files)) {
        let zones = poststelle::extract::zones::find(&ex, &markers);
        let meta = poststelle::extract::metadata::extract(&zones, &markers);
        let family = font.family;
        assert!(
            meta.sender_name
                .as_deref()
                .unwrap_or_default()
                .contains("Mustermann"),
            "{family}: {meta:?}\n{}",
            ex.pages[0].text
        );
        assert_eq!(
            meta.sender_address.as_deref(),
            Some("Lindenweg 4, 12345 Musterstadt"),
            "{family}"
        );
        assert_eq!(meta.letter_date.as_deref(), Some("2025-02-03"), "{family}");
        assert!(
            meta.subject
                .as_deref()
                .unwrap_or_default()
                .contains("Wintergarten"),
            "{family}: {meta:?}"
        );
        assert!(
            zones.address.as_deref().is_some_and(
                |a| a.starts_with("Stadt Musterstadt") && a.ends_with("12345 Musterstadt")
            ),
            "{family}: {:?}",
            zones.address
        );
    }
}

/// The API's view of a document: its row, metadata and audit events.
fn show(d: &TestApp, id: &str) -> serde_json::Value {
    reqwest::blocking::Client::new()
        .get(d.url(&format!("/api/documents/{id}")))
        .bearer_auth(&d.token)
        .send()
        .expect("show")
        .json()
        .expect("json")
}

fn event_detail(view: &serde_json::Value, kind: &str) -> serde_json::Value {
    view["events"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["kind"] == kind))
        .map(|e| {
            let d = &e["detail"];
            match d.as_str() {
                Some(s) => serde_json::from_str(s).unwrap_or(serde_json::Value::Null),
                None => d.clone(),
            }
        })
        .unwrap_or_else(|| panic!("no {kind} event: {view}"))
}

#[test]
fn a_scanned_pdf_keeps_its_page_images_gets_a_text_layer_and_each_page_is_read_once() {
    let d = spawn_app(&[]);
    let install = &*d;
    let (p1, p2) = bauantrag_pages();
    let p3 = noisy(
        render(
            &letter_pdf(&[
                (25.0, 40.0, 14.0, "Anlage Lageplan"),
                (
                    25.0,
                    55.0,
                    11.0,
                    "Grenzabstand zum Nachbargrundstück drei Meter.",
                ),
            ]),
            300,
        ),
        8,
    );
    let scan = scan_pdf_pages(&[&p1, &p2, &p3], 300);
    install.drop_file("scan-0004.pdf", &scan);
    let delivered = wait_for("delivery", LONG, || {
        let d = install.delivered();
        (d.len() == 1).then_some(d)
    });
    let (mailbox, pdf) = &delivered[0];
    assert_eq!(mailbox, "63");
    let bytes = std::fs::read(pdf).expect("read");
    // Every page is searchable (routing read page 1 only).
    let text = tool("pdftotext", &["-enc", "UTF-8"], pdf, &["-"]).replace("-\n", "");
    for word in ["Wintergarten", "Baubeschreibung", "Grenzabstand"] {
        assert!(text.contains(word), "{word} missing: {text}");
    }
    // The page images are the scanner's own streams, byte for byte, and the PDF is the scan
    // plus its text layer (font, text and PDF/A parts: a few kilobytes per page).
    for page in [&p1, &p2, &p3] {
        let jpeg = scan_jpeg(page);
        assert!(
            bytes.windows(jpeg.len()).any(|w| w == jpeg.as_slice()),
            "a page image was re-encoded"
        );
    }
    assert!(
        bytes.len() < scan.len() + 60_000,
        "{} bytes delivered for a {} byte scan",
        bytes.len(),
        scan.len()
    );
    // Each page was recognised once: routing read page 1, the PDF the other two.
    let sc = sidecar(pdf);
    let id = sc["document_id"].as_str().expect("id");
    let view = show(&d, id);
    let extracted = event_detail(&view, "extracted");
    let linked = event_detail(&view, "rendition_linked");
    assert_eq!(extracted["pages_read"], 1, "{extracted}");
    assert_eq!(linked["recognised_after_routing"], 2, "{linked}");
    assert_eq!(linked["text_pages"], 3, "{linked}");
    assert_eq!(linked["pdfa"], true, "{linked}");
}

#[test]
fn sigkill_after_delivering_a_searchable_pdf_redelivers_the_same_bytes() {
    let install = Install::new();
    let marker = install.path("paused");
    let marker_s = marker.display().to_string();
    let d = install.serve(&[
        ("POSTSTELLE_PAUSE_AT", "after_deliver"),
        ("POSTSTELLE_PAUSE_MARKER", &marker_s),
    ]);
    let (p1, _) = bauantrag_pages();
    install.drop_file("scan-0003.png", &png(&p1));
    wait_file(&marker, LONG);
    d.kill();
    let first = install.delivered();
    assert_eq!(first.len(), 1);
    let before = std::fs::read(&first[0].1).expect("read");
    assert!(before.starts_with(b"%PDF-"));
    let _d = install.serve(&[]);
    wait_for("confirmed", LONG, || {
        (install.documents()[0]["state"] == "delivered").then_some(())
    });
    let after = install.delivered();
    assert_eq!(after.len(), 1, "no second copy");
    assert_eq!(
        std::fs::read(&after[0].1).expect("read"),
        before,
        "the retry sends the stored searchable PDF, not a new one"
    );
}

fn sha256_hex(bytes: &[u8]) -> String {
    poststelle::store::blobs::sha256_hex(bytes)
}

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(repo().join("tests/data/einvoice").join(name)).expect("sample")
}

#[test]
fn xrechnung_ubl_and_cii_are_routed_by_leitweg_id_and_other_xml_is_quarantined() {
    let d = spawn_app(&[]);
    let install = &*d;
    install.drop_file("rechnung-ubl.xml", &sample("xrechnung-ubl.xml"));
    install.drop_file("rechnung-cii.xml", &sample("xrechnung-cii.xml"));
    install.drop_file(
        "rechnung-unbekannt.xml",
        &sample("xrechnung-ubl-unknown-leitweg.xml"),
    );
    install.drop_file(
        "bestellung.xml",
        b"<?xml version=\"1.0\"?>\n<Order><ID>1</ID></Order>",
    );
    wait_for("three documents settled", LONG, || {
        let docs = install.documents();
        let settled = docs
            .iter()
            .filter(|d| ["delivered", "review"].contains(&d["state"].as_str().unwrap_or("")))
            .count();
        (settled == 3).then_some(())
    });
    let delivered = install.delivered();
    let find = |mb: &str, number: &str| {
        delivered
            .iter()
            .find(|(m, p)| m == mb && sidecar(p)["metadata"]["invoice"]["number"] == number)
            .unwrap_or_else(|| panic!("invoice {number} not in mailbox {mb}: {delivered:?}"))
            .1
            .clone()
    };
    let ubl = find("20", "RE-2026-0042");
    assert_eq!(ubl.extension().and_then(|e| e.to_str()), Some("xml"));
    assert_eq!(
        std::fs::read(&ubl).expect("read"),
        sample("xrechnung-ubl.xml")
    );
    let sc = sidecar(&ubl);
    assert_eq!(sc["decided_by"], "invoice");
    let inv = &sc["metadata"]["invoice"];
    assert_eq!(inv["format"], "xrechnung-ubl");
    assert_eq!(inv["leitweg_id"], "05315000-12345-67");
    assert_eq!(inv["date"], "2026-03-12");
    assert_eq!(inv["supplier"], "Müller & Söhne Haustechnik GmbH");
    assert_eq!(inv["currency"], "EUR");
    assert_eq!(inv["net_amount"], "1000.00");
    assert_eq!(inv["tax_amount"], "190.00");
    assert_eq!(inv["gross_amount"], "1190.00");
    assert_eq!(inv["due_amount"], "1190.00");
    let basis = sc["decision"]["explanation"]["basis"]
        .as_str()
        .unwrap_or_default();
    assert!(
        basis.contains("Leitweg-ID 05315000-12345-67") && basis.contains("Postfach 20"),
        "{basis}"
    );
    let cii = sidecar(&find("63", "BA-7731"));
    assert_eq!(cii["decided_by"], "invoice");
    let inv = &cii["metadata"]["invoice"];
    assert_eq!(inv["format"], "xrechnung-cii");
    assert_eq!(inv["leitweg_id"], "05315000-63000-21");
    assert_eq!(inv["date"], "2026-03-05");
    assert_eq!(inv["supplier"], "Ingenieurbüro Statik Nord GmbH");
    assert_eq!(inv["net_amount"], "473.00");
    assert_eq!(inv["tax_amount"], "89.87");
    assert_eq!(inv["gross_amount"], "562.87");
    assert_eq!(inv["due_amount"], "562.87");
    // An unknown Leitweg-ID is classified like a letter, with the invoice data as metadata.
    let docs = install.documents();
    let unknown = docs
        .iter()
        .find(|d| d["original_name"] == "rechnung-unbekannt.xml")
        .expect("unknown-Leitweg invoice");
    assert_ne!(unknown["decided_by"], "invoice", "{unknown}");
    let view: serde_json::Value = reqwest::blocking::Client::new()
        .get(d.url(&format!(
            "/api/documents/{}",
            unknown["id"].as_str().expect("id")
        )))
        .bearer_auth(&install.token)
        .send()
        .expect("show")
        .json()
        .expect("json");
    assert_eq!(view["metadata"]["invoice"]["leitweg_id"], "991-99999-03");
    assert_eq!(view["metadata"]["invoice"]["number"], "RE-2026-0099");
    // Other XML: quarantined with a German reason.
    let reason = wait_for("quarantine reason", LONG, || {
        std::fs::read_dir(install.path("quarantine"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with("bestellung.xml.reason.txt"))
            .map(|p| std::fs::read_to_string(p).expect("reason"))
    });
    assert!(
        reason.contains("keine E-Rechnung") && reason.contains("Order"),
        "{reason}"
    );
}

/// A ZUGFeRD / Factur-X PDF: a visible invoice (text layer) with the CII XML embedded as
/// `factur-x.xml` (Factur-X 1.0: file specification in the catalog's `/AF` array and the
/// `/EmbeddedFiles` name tree, `/AFRelationship /Data`, `/Subtype /text#2Fxml`, plus the
/// Factur-X XMP extension in the document metadata).
fn zugferd_pdf(xml: &[u8]) -> Vec<u8> {
    let visible = letter_pdf(&[
        (25.0, 20.0, 14.0, "Ingenieurbüro Statik Nord GmbH"),
        (25.0, 27.0, 9.0, "Am Hang 3 · 54321 Nordheim"),
        (
            25.0,
            50.0,
            7.0,
            "Ingenieurbüro Statik Nord GmbH · Am Hang 3 · 54321 Nordheim",
        ),
        (25.0, 58.0, 11.0, "Stadt Musterstadt"),
        (25.0, 63.0, 11.0, "Rathausplatz 1"),
        (25.0, 68.0, 11.0, "12345 Musterstadt"),
        (125.0, 58.0, 10.0, "Nordheim, 10.03.2026"),
        (25.0, 103.0, 11.0, "Rechnung ZF-2026-0815"),
        (25.0, 115.0, 11.0, "Sehr geehrte Damen und Herren,"),
        (
            25.0,
            123.0,
            11.0,
            "für die Prüfung der Standsicherheit berechnen wir:",
        ),
        (
            25.0,
            131.0,
            11.0,
            "Nettobetrag 2.500,00 EUR, Umsatzsteuer 19 % 475,00 EUR",
        ),
        (25.0, 139.0, 11.0, "Gesamtbetrag 2.975,00 EUR"),
        (25.0, 147.0, 11.0, "IBAN DE89 3704 0044 0532 0130 00"),
    ]);
    let mut doc = lopdf::Document::load_mem(&visible).expect("load");
    let mut file = Stream::new(
        dictionary! {
            "Type" => "EmbeddedFile",
            "Subtype" => "text/xml",
            "Params" => dictionary! {
                "Size" => xml.len() as i64,
                "ModDate" => Object::string_literal("D:20260310120000+01'00'"),
            },
        },
        xml.to_vec(),
    );
    file.compress().expect("compress");
    let file = doc.add_object(file);
    let spec = doc.add_object(dictionary! {
        "Type" => "Filespec",
        "F" => Object::string_literal("factur-x.xml"),
        "UF" => Object::string_literal("factur-x.xml"),
        "Desc" => Object::string_literal("Factur-X/ZUGFeRD invoice"),
        "AFRelationship" => "Data",
        "EF" => dictionary! { "F" => file, "UF" => file },
    });
    let xmp = r#"<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/"><pdfaid:part>3</pdfaid:part><pdfaid:conformance>B</pdfaid:conformance></rdf:Description>
<rdf:Description rdf:about="" xmlns:fx="urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#"><fx:DocumentType>INVOICE</fx:DocumentType><fx:DocumentFileName>factur-x.xml</fx:DocumentFileName><fx:Version>1.0</fx:Version><fx:ConformanceLevel>EN 16931</fx:ConformanceLevel></rdf:Description>
</rdf:RDF></x:xmpmeta>
<?xpacket end="w"?>"#;
    let metadata = doc.add_object(Stream::new(
        dictionary! { "Type" => "Metadata", "Subtype" => "XML" },
        xmp.as_bytes().to_vec(),
    ));
    let catalog = doc.catalog_mut().expect("catalog");
    catalog.set("AF", vec![Object::from(spec)]);
    catalog.set(
        "Names",
        dictionary! {
            "EmbeddedFiles" => dictionary! {
                "Names" => vec![Object::string_literal("factur-x.xml"), Object::from(spec)],
            },
        },
    );
    catalog.set("Metadata", metadata);
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("save");
    out
}

#[test]
fn a_zugferd_pdf_is_routed_by_its_embedded_invoice() {
    let install = spawn_app(&[]);
    let pdf = zugferd_pdf(&sample("factur-x.xml"));
    install.drop_file("rechnung-zugferd.pdf", &pdf);
    let delivered = wait_for("delivery", LONG, || {
        let d = install.delivered();
        (d.len() == 1).then_some(d)
    });
    let (mailbox, path) = &delivered[0];
    assert_eq!(
        mailbox, "63",
        "Leitweg-ID 05315000-63000-21 is routed to 63"
    );
    assert_eq!(
        std::fs::read(path).expect("read"),
        pdf,
        "a born-digital PDF is delivered as it came"
    );
    let sc = sidecar(path);
    assert_eq!(sc["decided_by"], "invoice");
    let meta = &sc["metadata"];
    let inv = &meta["invoice"];
    assert_eq!(inv["format"], "zugferd");
    assert_eq!(inv["number"], "ZF-2026-0815");
    assert_eq!(inv["date"], "2026-03-10");
    assert_eq!(inv["leitweg_id"], "05315000-63000-21");
    assert_eq!(inv["gross_amount"], "2975.00");
    assert_eq!(inv["due_amount"], "2975.00");
    // Text metadata of the visible invoice sits beside the invoice facts.
    assert_eq!(meta["ibans"][0], "DE89370400440532013000", "{meta}");
    assert_eq!(meta["amounts"][0], "2975.00", "{meta}");
    assert_eq!(
        meta["sender_name"], "Ingenieurbüro Statik Nord GmbH",
        "{meta}"
    );
}
