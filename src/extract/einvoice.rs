//! Electronic invoices: XRechnung in UBL (`Invoice`, `CreditNote`) and UN/CEFACT CII
//! (`CrossIndustryInvoice`) syntax, and ZUGFeRD / Factur-X (a PDF carrying the CII XML as an
//! embedded file).
//!
//! The XML reader is bounded: a size limit, a depth limit, an element-count limit, no DTD
//! (a `<!DOCTYPE` is refused) and no entity expansion beyond the five predefined entities and
//! character references. Element names are matched by local name (namespace prefixes vary
//! between senders); the paths are those of EN 16931 as bound by XRechnung 3.0 (UBL 2.1 and
//! CII D16B) and used unchanged by ZUGFeRD 2.x / Factur-X 1.0.

use crate::domain::InvoiceInfo;
use quick_xml::events::Event;

/// Largest XML accepted, in bytes.
pub const MAX_XML_BYTES: usize = 16 * 1024 * 1024;
/// Deepest element nesting accepted.
const MAX_DEPTH: usize = 64;
/// Most elements accepted.
const MAX_ELEMENTS: usize = 500_000;
/// Most characters of text kept for classification.
const MAX_TEXT_CHARS: usize = 200_000;

/// Names of the invoice XML embedded in ZUGFeRD / Factur-X PDFs.
pub const EMBEDDED_NAMES: [&str; 4] = [
    "factur-x.xml",
    "zugferd-invoice.xml",
    "xrechnung.xml",
    "zugferd_invoice.xml",
];

/// The syntax of an invoice XML, told by its root element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// UBL 2.1 `Invoice` or `CreditNote`.
    Ubl,
    /// UN/CEFACT `CrossIndustryInvoice`.
    Cii,
}

/// Why an XML is not read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum XmlError {
    /// Not well-formed, too large, too deep, or uses a DTD or unknown entities.
    #[error("{0}")]
    Broken(String),
    /// Well-formed, but not an invoice.
    #[error("root element {0} is not an invoice")]
    NotInvoice(String),
}

fn local(name: &[u8]) -> String {
    let n = match name.iter().rposition(|&b| b == b':') {
        Some(i) => &name[i + 1..],
        None => name,
    };
    String::from_utf8_lossy(n).into_owned()
}

fn reader(bytes: &[u8]) -> Result<quick_xml::Reader<&[u8]>, XmlError> {
    if bytes.len() > MAX_XML_BYTES {
        return Err(XmlError::Broken(format!(
            "XML larger than {} MB",
            MAX_XML_BYTES / (1024 * 1024)
        )));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut r = quick_xml::Reader::from_reader(bytes);
    let cfg = r.config_mut();
    cfg.trim_text(false);
    cfg.check_end_names = true;
    cfg.expand_empty_elements = false;
    Ok(r)
}

/// Tells the syntax from the root element. Reads only up to the root's start tag.
pub fn root(bytes: &[u8]) -> Result<Syntax, XmlError> {
    let mut r = reader(bytes)?;
    let mut buf = Vec::new();
    loop {
        match r.read_event_into(&mut buf) {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                let name = local(e.name().as_ref());
                return match name.as_str() {
                    "Invoice" | "CreditNote" => Ok(Syntax::Ubl),
                    "CrossIndustryInvoice" => Ok(Syntax::Cii),
                    _ => Err(XmlError::NotInvoice(name)),
                };
            }
            Ok(Event::DocType(_)) => {
                return Err(XmlError::Broken("DTDs are not accepted".into()));
            }
            Ok(Event::Eof) => return Err(XmlError::Broken("no root element".into())),
            Ok(Event::Text(t)) if !t.iter().all(u8::is_ascii_whitespace) => {
                return Err(XmlError::Broken("text before the root element".into()));
            }
            Ok(_) => {}
            Err(e) => return Err(XmlError::Broken(e.to_string())),
        }
        buf.clear();
    }
}

/// Leaf values by element path (local names joined by `/`), first occurrence kept, plus all
/// text in document order.
struct Leaves {
    values: Vec<(String, String)>,
    text: String,
}

impl Leaves {
    fn get(&self, path: &str) -> Option<String> {
        self.values
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    }
}

fn read_leaves(bytes: &[u8]) -> Result<Leaves, XmlError> {
    let mut r = reader(bytes)?;
    let mut buf = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut values = Vec::new();
    let mut text = String::new();
    let mut elements = 0usize;
    let mut seen_root = false;
    let flush = |stack: &[String], current: &mut String, values: &mut Vec<(String, String)>| {
        if !current.trim().is_empty() {
            values.push((stack.join("/"), current.trim().to_string()));
        }
        current.clear();
    };
    loop {
        let ev = r
            .read_event_into(&mut buf)
            .map_err(|e| XmlError::Broken(format!("at byte {}: {e}", r.buffer_position())))?;
        match ev {
            Event::Start(e) => {
                flush(&stack, &mut current, &mut values);
                if seen_root && stack.is_empty() {
                    return Err(XmlError::Broken("more than one root element".into()));
                }
                seen_root = true;
                elements += 1;
                if stack.len() >= MAX_DEPTH || elements > MAX_ELEMENTS {
                    return Err(XmlError::Broken(
                        "XML nested too deeply or too large".into(),
                    ));
                }
                stack.push(local(e.name().as_ref()));
            }
            Event::Empty(_) => {
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return Err(XmlError::Broken("XML too large".into()));
                }
            }
            Event::End(_) => {
                flush(&stack, &mut current, &mut values);
                stack.pop();
                if !text.is_empty() && !text.ends_with('\n') {
                    text.push('\n');
                }
            }
            Event::Text(t) => {
                if stack.is_empty() {
                    continue;
                }
                let s = t
                    .decode()
                    .map_err(|e| XmlError::Broken(format!("text encoding: {e}")))?;
                current.push_str(&s);
                if text.len() < MAX_TEXT_CHARS && !s.trim().is_empty() {
                    text.push_str(if current.trim() == s.trim() {
                        s.trim_start()
                    } else {
                        &s
                    });
                }
            }
            Event::CData(c) => {
                let s = String::from_utf8_lossy(&c).into_owned();
                current.push_str(&s);
            }
            Event::GeneralRef(g) => {
                let ch = match g.resolve_char_ref() {
                    Ok(Some(c)) => c,
                    Ok(None) => match &*g {
                        b"amp" => '&',
                        b"lt" => '<',
                        b"gt" => '>',
                        b"quot" => '"',
                        b"apos" => '\'',
                        other => {
                            return Err(XmlError::Broken(format!(
                                "unknown entity &{};",
                                String::from_utf8_lossy(other)
                            )));
                        }
                    },
                    Err(e) => return Err(XmlError::Broken(e.to_string())),
                };
                current.push(ch);
                if text.len() < MAX_TEXT_CHARS {
                    text.push(ch);
                }
            }
            Event::DocType(_) => return Err(XmlError::Broken("DTDs are not accepted".into())),
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
        buf.clear();
    }
    if !stack.is_empty() || !seen_root {
        return Err(XmlError::Broken("XML ends inside an element".into()));
    }
    Ok(Leaves { values, text })
}

/// A decimal amount as written in the XML (`1234.56`), checked to be one.
fn amount(v: Option<String>) -> Option<String> {
    let v = v?;
    let ok = !v.is_empty()
        && v.trim_start_matches('-')
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.')
        && v.chars().filter(|&c| c == '.').count() <= 1
        && v.chars().any(|c| c.is_ascii_digit());
    ok.then_some(v)
}

/// CII dates (format 102: `YYYYMMDD`) and UBL dates (`YYYY-MM-DD`) to ISO 8601.
fn iso_date(v: Option<String>) -> Option<String> {
    let v = v?;
    let d = if v.len() == 8 && v.chars().all(|c| c.is_ascii_digit()) {
        chrono::NaiveDate::parse_from_str(&v, "%Y%m%d").ok()?
    } else {
        chrono::NaiveDate::parse_from_str(v.get(..10)?, "%Y-%m-%d").ok()?
    };
    Some(d.format("%Y-%m-%d").to_string())
}

/// Parses an invoice XML. `format` names the container (`zugferd` for a PDF's embedded XML);
/// without it the syntax names the format (`xrechnung-ubl`, `xrechnung-cii`). Returns the
/// invoice facts and the XML's text (for classification).
pub fn parse(bytes: &[u8], format: Option<&str>) -> Result<(InvoiceInfo, String), XmlError> {
    let syntax = root(bytes)?;
    let leaves = read_leaves(bytes)?;
    let info = match syntax {
        Syntax::Ubl => {
            let root = leaves
                .values
                .first()
                .and_then(|(p, _)| p.split('/').next().map(str::to_string))
                .unwrap_or_else(|| "Invoice".into());
            let p = |rest: &str| leaves.get(&format!("{root}/{rest}"));
            InvoiceInfo {
                format: format.unwrap_or("xrechnung-ubl").into(),
                number: p("ID"),
                date: iso_date(p("IssueDate")),
                supplier: p("AccountingSupplierParty/Party/PartyLegalEntity/RegistrationName")
                    .or_else(|| p("AccountingSupplierParty/Party/PartyName/Name")),
                leitweg_id: p("BuyerReference"),
                currency: p("DocumentCurrencyCode"),
                net_amount: amount(p("LegalMonetaryTotal/TaxExclusiveAmount")),
                tax_amount: amount(p("TaxTotal/TaxAmount")),
                gross_amount: amount(p("LegalMonetaryTotal/TaxInclusiveAmount")),
                due_amount: amount(p("LegalMonetaryTotal/PayableAmount")),
            }
        }
        Syntax::Cii => {
            let p = |rest: &str| leaves.get(&format!("CrossIndustryInvoice/{rest}"));
            let tr = |rest: &str| p(&format!("SupplyChainTradeTransaction/{rest}"));
            let sum = |rest: &str| {
                tr(&format!(
                    "ApplicableHeaderTradeSettlement/SpecifiedTradeSettlementHeaderMonetarySummation/{rest}"
                ))
            };
            InvoiceInfo {
                format: format.unwrap_or("xrechnung-cii").into(),
                number: p("ExchangedDocument/ID"),
                date: iso_date(p("ExchangedDocument/IssueDateTime/DateTimeString")),
                supplier: tr("ApplicableHeaderTradeAgreement/SellerTradeParty/Name"),
                leitweg_id: tr("ApplicableHeaderTradeAgreement/BuyerReference"),
                currency: tr("ApplicableHeaderTradeSettlement/InvoiceCurrencyCode"),
                net_amount: amount(sum("TaxBasisTotalAmount")),
                tax_amount: amount(sum("TaxTotalAmount")),
                gross_amount: amount(sum("GrandTotalAmount")),
                due_amount: amount(sum("DuePayableAmount")),
            }
        }
    };
    let text = format!("{}\n{}", summary(&info), leaves.text);
    Ok((info, text))
}

/// The invoice's facts as German text lines (the head of the text people and the model see).
pub fn summary(i: &InvoiceInfo) -> String {
    let mut out = format!("E-Rechnung ({})\n", i.format);
    let mut line = |label: &str, v: &Option<String>| {
        if let Some(v) = v {
            out.push_str(&format!("{label}: {v}\n"));
        }
    };
    line("Rechnungsnummer", &i.number);
    line("Rechnungsdatum", &i.date);
    line("Rechnungssteller", &i.supplier);
    line("Leitweg-ID", &i.leitweg_id);
    line("Nettobetrag", &i.net_amount);
    line("Umsatzsteuer", &i.tax_amount);
    line("Bruttobetrag", &i.gross_amount);
    line("Zahlbetrag", &i.due_amount);
    line("Währung", &i.currency);
    out
}

/// Finds the invoice XML embedded in a PDF (ZUGFeRD / Factur-X / XRechnung in PDF): the
/// catalog's `/AF` array and the `/EmbeddedFiles` name tree, by file name.
pub fn embedded_xml(doc: &lopdf::Document) -> Option<Vec<u8>> {
    let catalog = doc.catalog().ok()?;
    let mut specs: Vec<lopdf::Object> = Vec::new();
    if let Ok(af) = catalog.get(b"AF").and_then(|o| resolve(doc, o).as_array()) {
        specs.extend(af.iter().cloned());
    }
    if let Ok(names) = catalog.get(b"Names").map(|o| resolve(doc, o))
        && let Ok(names) = names.as_dict()
        && let Ok(tree) = names.get(b"EmbeddedFiles").map(|o| resolve(doc, o))
    {
        collect_name_tree(doc, tree, &mut specs, 0);
    }
    for spec in specs {
        let Ok(spec) = resolve(doc, &spec).as_dict() else {
            continue;
        };
        let name = [b"UF".as_slice(), b"F".as_slice()]
            .iter()
            .find_map(|k| spec.get(k).ok().and_then(|o| pdf_string(resolve(doc, o))))
            .unwrap_or_default()
            .to_lowercase();
        if !EMBEDDED_NAMES.contains(&name.as_str()) {
            continue;
        }
        let Ok(ef) = spec.get(b"EF").map(|o| resolve(doc, o)) else {
            continue;
        };
        let Ok(ef) = ef.as_dict() else { continue };
        let Ok(stream) = ef
            .get(b"F")
            .or_else(|_| ef.get(b"UF"))
            .map(|o| resolve(doc, o))
        else {
            continue;
        };
        let Ok(stream) = stream.as_stream() else {
            continue;
        };
        if let Some(bytes) = embedded_bytes(stream) {
            return Some(bytes);
        }
    }
    None
}

/// The bytes of an embedded file's stream, at most [`MAX_XML_BYTES`]: a Flate stream is
/// inflated through a reader that stops one byte past the limit (a compression bomb costs no
/// more than that), a stream without a filter is taken as it is. Other filters (and Flate with
/// a predictor) are not read: ZUGFeRD, Factur-X and XRechnung embed with plain `FlateDecode`.
fn embedded_bytes(stream: &lopdf::Stream) -> Option<Vec<u8>> {
    use std::io::Read;
    let bytes = match stream.dict.get(b"Filter") {
        Err(_) => stream.content.clone(),
        Ok(filter) => {
            let flate = match filter {
                lopdf::Object::Name(n) => n == b"FlateDecode",
                lopdf::Object::Array(a) => {
                    matches!(&a[..], [lopdf::Object::Name(n)] if n == b"FlateDecode")
                }
                _ => false,
            };
            if !flate || stream.dict.get(b"DecodeParms").is_ok() {
                return None;
            }
            let mut out = Vec::new();
            flate2::read::ZlibDecoder::new(stream.content.as_slice())
                .take(MAX_XML_BYTES as u64 + 1)
                .read_to_end(&mut out)
                .ok()?;
            out
        }
    };
    (bytes.len() <= MAX_XML_BYTES).then_some(bytes)
}

fn resolve<'a>(doc: &'a lopdf::Document, o: &'a lopdf::Object) -> &'a lopdf::Object {
    match o {
        lopdf::Object::Reference(id) => doc.get_object(*id).unwrap_or(o),
        _ => o,
    }
}

fn pdf_string(o: &lopdf::Object) -> Option<String> {
    match o {
        lopdf::Object::String(b, _) => {
            // UTF-16BE with BOM, else PDFDocEncoding (Latin-1 for the names that matter).
            if b.starts_with(&[0xFE, 0xFF]) {
                let u: Vec<u16> = b[2..]
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect();
                Some(String::from_utf16_lossy(&u))
            } else {
                Some(b.iter().map(|&c| c as char).collect())
            }
        }
        _ => None,
    }
}

fn collect_name_tree(
    doc: &lopdf::Document,
    node: &lopdf::Object,
    out: &mut Vec<lopdf::Object>,
    depth: usize,
) {
    if depth > 8 || out.len() > 64 {
        return;
    }
    let Ok(dict) = node.as_dict() else { return };
    if let Ok(names) = dict.get(b"Names").map(|o| resolve(doc, o))
        && let Ok(arr) = names.as_array()
    {
        for pair in arr.chunks(2) {
            if let [_, spec] = pair {
                out.push(spec.clone());
            }
        }
    }
    if let Ok(kids) = dict.get(b"Kids").map(|o| resolve(doc, o))
        && let Ok(kids) = kids.as_array()
    {
        for k in kids {
            collect_name_tree(doc, resolve(doc, k), out, depth + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UBL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ubl:Invoice xmlns:ubl="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
  xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
  xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
  <cbc:CustomizationID>urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0</cbc:CustomizationID>
  <cbc:ID>RE-2026-0042</cbc:ID>
  <cbc:IssueDate>2026-03-12</cbc:IssueDate>
  <cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>
  <cbc:BuyerReference>05315000-12345-67</cbc:BuyerReference>
  <cac:AccountingSupplierParty><cac:Party>
    <cac:PartyName><cbc:Name>Müller &amp; Söhne</cbc:Name></cac:PartyName>
    <cac:PartyLegalEntity><cbc:RegistrationName>Müller &amp; Söhne Bau GmbH</cbc:RegistrationName></cac:PartyLegalEntity>
  </cac:Party></cac:AccountingSupplierParty>
  <cac:TaxTotal><cbc:TaxAmount currencyID="EUR">190.00</cbc:TaxAmount></cac:TaxTotal>
  <cac:LegalMonetaryTotal>
    <cbc:LineExtensionAmount currencyID="EUR">1000.00</cbc:LineExtensionAmount>
    <cbc:TaxExclusiveAmount currencyID="EUR">1000.00</cbc:TaxExclusiveAmount>
    <cbc:TaxInclusiveAmount currencyID="EUR">1190.00</cbc:TaxInclusiveAmount>
    <cbc:PayableAmount currencyID="EUR">1190.00</cbc:PayableAmount>
  </cac:LegalMonetaryTotal>
</ubl:Invoice>"#;

    /// A PDF (no pages needed) whose catalog names `factur-x.xml` with this stream.
    fn pdf_embedding(stream: lopdf::Stream) -> lopdf::Document {
        use lopdf::{Object, dictionary};
        let mut doc = lopdf::Document::with_version("1.7");
        let file = doc.add_object(stream);
        let spec = doc.add_object(dictionary! {
            "Type" => "Filespec",
            "F" => Object::string_literal("factur-x.xml"),
            "UF" => Object::string_literal("factur-x.xml"),
            "EF" => dictionary! { "F" => file },
        });
        let catalog = doc.add_object(dictionary! {
            "Type" => "Catalog",
            "AF" => vec![spec.into()],
        });
        doc.trailer.set("Root", catalog);
        doc
    }

    fn deflate(chunks: impl Iterator<Item = Vec<u8>>) -> Vec<u8> {
        use std::io::Write;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        for c in chunks {
            z.write_all(&c).expect("deflate");
        }
        z.finish().expect("deflate")
    }

    #[test]
    fn an_embedded_invoice_is_inflated_and_a_compression_bomb_is_refused_unread() {
        use lopdf::{Stream, dictionary};
        // A real one, Flate-compressed, and the same without a filter.
        let packed = deflate(std::iter::once(UBL.as_bytes().to_vec()));
        let doc = pdf_embedding(Stream::new(
            dictionary! { "Type" => "EmbeddedFile", "Filter" => "FlateDecode" },
            packed,
        ));
        assert_eq!(embedded_xml(&doc).as_deref(), Some(UBL.as_bytes()));
        let doc = pdf_embedding(Stream::new(
            dictionary! { "Type" => "EmbeddedFile" },
            UBL.as_bytes().to_vec(),
        ));
        assert_eq!(embedded_xml(&doc).as_deref(), Some(UBL.as_bytes()));
        // 1 GiB of zeros deflated into about a megabyte: refused after MAX_XML_BYTES + 1 bytes
        // (the test process would need a gigabyte if it were inflated whole).
        let bomb = deflate((0..1024).map(|_| vec![0u8; 1024 * 1024]));
        assert!(bomb.len() < 4 * 1024 * 1024, "{}", bomb.len());
        let mut stream = Stream::new(
            dictionary! { "Type" => "EmbeddedFile", "Filter" => "FlateDecode" },
            bomb,
        );
        stream.allows_compression = false;
        let doc = pdf_embedding(stream);
        assert_eq!(embedded_xml(&doc), None);
        // As a file: the PDF still loads, and the invoice is not read from it.
        let mut doc = doc;
        let mut bytes = Vec::new();
        doc.save_to(&mut bytes).expect("save");
        let loaded = lopdf::Document::load_mem(&bytes).expect("load");
        assert_eq!(embedded_xml(&loaded), None);
        // A filter we do not inflate is not read either.
        let doc = pdf_embedding(Stream::new(
            dictionary! { "Type" => "EmbeddedFile", "Filter" => "LZWDecode" },
            vec![0x80, 0x0b, 0x60, 0x50, 0x22, 0x0c, 0x0c, 0x85, 0x01],
        ));
        assert_eq!(embedded_xml(&doc), None);
    }

    #[test]
    fn ubl_invoice() {
        assert_eq!(root(UBL.as_bytes()), Ok(Syntax::Ubl));
        let (i, text) = parse(UBL.as_bytes(), None).expect("parse");
        assert_eq!(i.format, "xrechnung-ubl");
        assert_eq!(i.number.as_deref(), Some("RE-2026-0042"));
        assert_eq!(i.date.as_deref(), Some("2026-03-12"));
        assert_eq!(i.supplier.as_deref(), Some("Müller & Söhne Bau GmbH"));
        assert_eq!(i.leitweg_id.as_deref(), Some("05315000-12345-67"));
        assert_eq!(i.currency.as_deref(), Some("EUR"));
        assert_eq!(i.net_amount.as_deref(), Some("1000.00"));
        assert_eq!(i.tax_amount.as_deref(), Some("190.00"));
        assert_eq!(i.gross_amount.as_deref(), Some("1190.00"));
        assert_eq!(i.due_amount.as_deref(), Some("1190.00"));
        assert!(text.contains("Leitweg-ID: 05315000-12345-67"), "{text}");
    }

    #[test]
    fn credit_note_root_is_ubl() {
        let x = r#"<CreditNote xmlns="urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2" xmlns:cbc="x"><cbc:ID>GS-1</cbc:ID></CreditNote>"#;
        let (i, _) = parse(x.as_bytes(), None).expect("parse");
        assert_eq!(i.number.as_deref(), Some("GS-1"));
    }

    #[test]
    fn cii_invoice() {
        let x = r#"<?xml version="1.0"?>
<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100" xmlns:ram="urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100" xmlns:udt="urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100">
 <rsm:ExchangedDocument><ram:ID>471102</ram:ID><ram:TypeCode>380</ram:TypeCode>
  <ram:IssueDateTime><udt:DateTimeString format="102">20260305</udt:DateTimeString></ram:IssueDateTime></rsm:ExchangedDocument>
 <rsm:SupplyChainTradeTransaction>
  <ram:ApplicableHeaderTradeAgreement><ram:BuyerReference>991-01234-44</ram:BuyerReference>
   <ram:SellerTradeParty><ram:Name>Lieferant GmbH</ram:Name></ram:SellerTradeParty></ram:ApplicableHeaderTradeAgreement>
  <ram:ApplicableHeaderTradeSettlement><ram:InvoiceCurrencyCode>EUR</ram:InvoiceCurrencyCode>
   <ram:SpecifiedTradeSettlementHeaderMonetarySummation>
    <ram:LineTotalAmount>473.00</ram:LineTotalAmount><ram:TaxBasisTotalAmount>473.00</ram:TaxBasisTotalAmount>
    <ram:TaxTotalAmount currencyID="EUR">56.87</ram:TaxTotalAmount><ram:GrandTotalAmount>529.87</ram:GrandTotalAmount>
    <ram:DuePayableAmount>529.87</ram:DuePayableAmount>
   </ram:SpecifiedTradeSettlementHeaderMonetarySummation></ram:ApplicableHeaderTradeSettlement>
 </rsm:SupplyChainTradeTransaction>
</rsm:CrossIndustryInvoice>"#;
        let (i, _) = parse(x.as_bytes(), Some("zugferd")).expect("parse");
        assert_eq!(i.format, "zugferd");
        assert_eq!(i.number.as_deref(), Some("471102"));
        assert_eq!(i.date.as_deref(), Some("2026-03-05"));
        assert_eq!(i.supplier.as_deref(), Some("Lieferant GmbH"));
        assert_eq!(i.leitweg_id.as_deref(), Some("991-01234-44"));
        assert_eq!(i.net_amount.as_deref(), Some("473.00"));
        assert_eq!(i.tax_amount.as_deref(), Some("56.87"));
        assert_eq!(i.gross_amount.as_deref(), Some("529.87"));
        assert_eq!(i.due_amount.as_deref(), Some("529.87"));
    }

    #[test]
    fn hostile_and_foreign_xml_is_refused() {
        let bomb = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><Invoice>&lol2;</Invoice>"#;
        assert!(matches!(root(bomb.as_bytes()), Err(XmlError::Broken(_))));
        assert!(matches!(
            parse(bomb.as_bytes(), None),
            Err(XmlError::Broken(_))
        ));
        assert!(matches!(
            parse(b"<Invoice><ID>&xxe;</ID></Invoice>", None),
            Err(XmlError::Broken(_))
        ));
        assert_eq!(
            root(b"<?xml version=\"1.0\"?><html><body/></html>"),
            Err(XmlError::NotInvoice("html".into()))
        );
        assert!(matches!(
            parse(b"<Invoice><ID>1</ID>", None),
            Err(XmlError::Broken(_))
        ));
        let deep = format!("<Invoice>{}", "<a>".repeat(200));
        assert!(matches!(
            parse(deep.as_bytes(), None),
            Err(XmlError::Broken(_))
        ));
    }
}
