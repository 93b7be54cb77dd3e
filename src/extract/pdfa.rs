//! PDF/A-2b for the searchable PDFs (archives and BSI TR-RESISCAN ask for it).
//!
//! The PDF itself is assembled elsewhere ([`super::searchable`]); this module supplies what
//! PDF/A-2b adds to it:
//!
//! - [`srgb_icc`]: an sRGB ICC profile (v2.1, display class), written in code;
//! - [`xmp`]: the XMP metadata packet (`pdfaid:part` 2, `pdfaid:conformance` B, Dublin Core
//!   title, dates, producer);
//! - [`obstacles`]: why a given PDF (say a scanner's PDF that gets a text layer) cannot be made
//!   PDF/A-2b here: encryption, JavaScript, embedded files, LZW, CMYK or DeviceN colour, a
//!   foreign output intent, fonts that are not embedded and the like. The list is conservative:
//!   what cannot be checked cheaply counts as an obstacle;
//! - [`apply`]: adds the metadata stream, the sRGB output intent, a document information
//!   dictionary consistent with the XMP and a trailer `/ID`, and sets the version to 1.7.
//!
//! lopdf 0.36 writes the binary comment line PDF/A asks for after the header (four bytes above
//! 127, from `Document::binary_mark`), so `Document::save_to` is enough once [`apply`] ran.

use chrono::{DateTime, Utc};
use lopdf::{Dictionary, Document, Object, ObjectId, Stream, StringFormat, dictionary};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// The output condition of the sRGB output intent (and the profile's description).
pub const SRGB_CONDITION: &str = "sRGB IEC61966-2.1";

/// The producer written into the XMP packet and the document information dictionary.
pub const PRODUCER: &str = concat!("poststelle ", env!("CARGO_PKG_VERSION"), " (lopdf)");

/// The creator tool when the document does not name one.
const CREATOR_TOOL: &str = "poststelle";

/// The binary comment PDF/A wants after the header when a document carries none.
const BINARY_MARK: [u8; 4] = [0xE2, 0xE3, 0xCF, 0xD3];

/// The highest object number PDF/A-2 allows.
const MAX_OBJECT_NUMBER: u32 = 8_388_607;

/// Deeper nesting of direct objects is not looked into (and counts as an obstacle).
const MAX_DEPTH: usize = 64;

// ---------------------------------------------------------------------------------------------
// ICC profile
// ---------------------------------------------------------------------------------------------

/// The PCS illuminant D50, as ICC.1 fixes it.
const D50: [f64; 3] = [0.9642, 1.0, 0.8249];

/// The sRGB primaries, Bradford-adapted to D50 (the columns of the RGB -> XYZ matrix).
const SRGB_RED: [f64; 3] = [0.436_066, 0.222_488, 0.013_916];
const SRGB_GREEN: [f64; 3] = [0.385_147, 0.716_873, 0.097_076];
const SRGB_BLUE: [f64; 3] = [0.143_066, 0.060_608, 0.714_096];

/// Entries of the tone reproduction curve.
const TRC_POINTS: usize = 1024;

/// An sRGB ICC profile (ICC v2, display class, RGB -> XYZ, D50), generated in code.
///
/// A matrix/TRC profile: the header, a tag table and the tags `desc`, `cprt`, `wtpt`,
/// `rXYZ`/`gXYZ`/`bXYZ` and `rTRC`/`gTRC`/`bTRC` (the three curves share one block of
/// [`TRC_POINTS`] samples of the exact sRGB transfer function). Every tag starts on a 4-byte
/// boundary; the size in the header is the length of the profile.
pub fn srgb_icc() -> Vec<u8> {
    let blocks: [Vec<u8>; 7] = [
        desc_tag(SRGB_CONDITION),
        text_tag("No copyright, use freely"),
        xyz_tag(D50),
        xyz_tag(SRGB_RED),
        xyz_tag(SRGB_GREEN),
        xyz_tag(SRGB_BLUE),
        curve_tag(TRC_POINTS),
    ];
    // (signature, index into `blocks`)
    let tags: [(&[u8; 4], usize); 9] = [
        (b"desc", 0),
        (b"cprt", 1),
        (b"wtpt", 2),
        (b"rXYZ", 3),
        (b"gXYZ", 4),
        (b"bXYZ", 5),
        (b"rTRC", 6),
        (b"gTRC", 6),
        (b"bTRC", 6),
    ];
    let mut offsets = Vec::with_capacity(blocks.len());
    let mut pos = align4(128 + 4 + 12 * tags.len());
    for block in &blocks {
        offsets.push(pos);
        pos = align4(pos + block.len());
    }
    let size = pos;

    let mut out = Vec::with_capacity(size);
    out.extend(u32_be(size));
    out.extend([0; 4]); // preferred CMM: none
    out.extend(0x0210_0000u32.to_be_bytes()); // version 2.1.0
    out.extend(b"mntr");
    out.extend(b"RGB ");
    out.extend(b"XYZ ");
    // Creation date (fixed, so that the profile is the same bytes every time).
    for part in [2024u16, 1, 1, 0, 0, 0] {
        out.extend(part.to_be_bytes());
    }
    out.extend(b"acsp");
    out.extend([0; 4]); // primary platform: none
    out.extend([0; 4]); // flags
    out.extend([0; 4]); // device manufacturer
    out.extend([0; 4]); // device model
    out.extend([0; 8]); // device attributes
    out.extend(0u32.to_be_bytes()); // rendering intent: perceptual
    for v in D50 {
        out.extend(s15_fixed16(v));
    }
    out.extend([0; 4]); // creator
    out.resize(128, 0); // profile ID (v4 only) and reserved bytes

    out.extend(u32_be(tags.len()));
    for (signature, block) in tags {
        out.extend(signature);
        out.extend(u32_be(offsets[block]));
        out.extend(u32_be(blocks[block].len()));
    }
    for (block, offset) in blocks.iter().zip(&offsets) {
        out.resize(*offset, 0);
        out.extend(block);
    }
    out.resize(size, 0);
    out
}

fn align4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

/// A length or offset inside the profile (a few kilobytes, so it always fits).
fn u32_be(n: usize) -> [u8; 4] {
    u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes()
}

fn s15_fixed16(v: f64) -> [u8; 4] {
    ((v * 65536.0).round() as i32).to_be_bytes()
}

/// `textDescriptionType`: the ASCII, Unicode and ScriptCode descriptions.
fn desc_tag(text: &str) -> Vec<u8> {
    let mut v = b"desc".to_vec();
    v.extend([0; 4]);
    let ascii: Vec<u8> = text
        .bytes()
        .filter(u8::is_ascii)
        .chain(std::iter::once(0))
        .collect();
    v.extend(u32_be(ascii.len()));
    v.extend(&ascii);
    let unicode: Vec<u16> = text.encode_utf16().chain(std::iter::once(0)).collect();
    v.extend([0; 4]); // Unicode language code
    v.extend(u32_be(unicode.len()));
    for unit in unicode {
        v.extend(unit.to_be_bytes());
    }
    // ScriptCode: code 0 (Roman), the ASCII text (with its NUL) in a 67-byte field.
    let script = &ascii[..ascii.len().min(67)];
    v.extend(0u16.to_be_bytes());
    v.push(u8::try_from(script.len()).unwrap_or(0));
    let mut field = [0u8; 67];
    field[..script.len()].copy_from_slice(script);
    v.extend(field);
    v
}

/// `textType`: ASCII text with its NUL.
fn text_tag(text: &str) -> Vec<u8> {
    let mut v = b"text".to_vec();
    v.extend([0; 4]);
    v.extend(text.bytes().filter(u8::is_ascii));
    v.push(0);
    v
}

/// `XYZType` with one value.
fn xyz_tag(xyz: [f64; 3]) -> Vec<u8> {
    let mut v = b"XYZ ".to_vec();
    v.extend([0; 4]);
    for c in xyz {
        v.extend(s15_fixed16(c));
    }
    v
}

/// `curveType`: `points` samples of the sRGB transfer function (encoded value -> linear).
fn curve_tag(points: usize) -> Vec<u8> {
    let mut v = b"curv".to_vec();
    v.extend([0; 4]);
    v.extend(u32_be(points));
    let last = points.saturating_sub(1).max(1) as f64;
    for i in 0..points {
        let linear = srgb_to_linear(i as f64 / last);
        let sample = (linear * 65535.0).round().clamp(0.0, 65535.0) as u16;
        v.extend(sample.to_be_bytes());
    }
    v
}

/// The sRGB transfer function (IEC 61966-2-1): an encoded value in 0..=1 to linear light.
fn srgb_to_linear(c: f64) -> f64 {
    if c <= 0.040_45 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

// ---------------------------------------------------------------------------------------------
// XMP
// ---------------------------------------------------------------------------------------------

/// What the XMP packet (and the document information dictionary) says.
struct Fields<'a> {
    title: Option<&'a str>,
    author: Option<&'a str>,
    subject: Option<&'a str>,
    keywords: Option<&'a str>,
    creator_tool: &'a str,
    producer: &'a str,
    date: DateTime<Utc>,
}

/// The XMP metadata packet for PDF/A-2b.
///
/// `pdfaid:part` 2 and `pdfaid:conformance` B, `dc:format`, `dc:title` (an `rdf:Alt` with
/// `xml:lang="x-default"`, when a title is given), `xmp:CreateDate`, `xmp:ModifyDate` and
/// `xmp:MetadataDate` (all `now`, to the second, with offset), `xmp:CreatorTool` and
/// `pdf:Producer`. Control characters in the title become spaces; XML is escaped.
pub fn xmp(title: Option<&str>, producer: &str, now: DateTime<Utc>) -> Vec<u8> {
    let title = title.and_then(clean);
    let producer = clean(producer).unwrap_or_default();
    xmp_packet(&Fields {
        title: title.as_deref(),
        author: None,
        subject: None,
        keywords: None,
        creator_tool: CREATOR_TOOL,
        producer: &producer,
        date: now,
    })
}

/// The packet for `f`; its texts must already be [`clean`].
fn xmp_packet(f: &Fields<'_>) -> Vec<u8> {
    let date = xmp_date(f.date);
    let mut x = String::with_capacity(4096);
    x.push_str("<?xpacket begin=\"\u{feff}\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n");
    x.push_str("<x:xmpmeta xmlns:x=\"adobe:ns:meta/\">\n");
    x.push_str(" <rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n");

    x.push_str(
        "  <rdf:Description rdf:about=\"\" xmlns:pdfaid=\"http://www.aiim.org/pdfa/ns/id/\">\n",
    );
    x.push_str("   <pdfaid:part>2</pdfaid:part>\n");
    x.push_str("   <pdfaid:conformance>B</pdfaid:conformance>\n");
    x.push_str("  </rdf:Description>\n");

    x.push_str(
        "  <rdf:Description rdf:about=\"\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\">\n",
    );
    x.push_str("   <dc:format>application/pdf</dc:format>\n");
    if let Some(title) = f.title {
        let _ = writeln!(
            x,
            "   <dc:title><rdf:Alt><rdf:li xml:lang=\"x-default\">{}</rdf:li></rdf:Alt></dc:title>",
            escape(title)
        );
    }
    if let Some(author) = f.author {
        let _ = writeln!(
            x,
            "   <dc:creator><rdf:Seq><rdf:li>{}</rdf:li></rdf:Seq></dc:creator>",
            escape(author)
        );
    }
    if let Some(subject) = f.subject {
        let _ = writeln!(
            x,
            "   <dc:description><rdf:Alt><rdf:li xml:lang=\"x-default\">{}</rdf:li></rdf:Alt></dc:description>",
            escape(subject)
        );
    }
    x.push_str("  </rdf:Description>\n");

    x.push_str("  <rdf:Description rdf:about=\"\" xmlns:xmp=\"http://ns.adobe.com/xap/1.0/\">\n");
    let _ = writeln!(x, "   <xmp:CreateDate>{date}</xmp:CreateDate>");
    let _ = writeln!(x, "   <xmp:ModifyDate>{date}</xmp:ModifyDate>");
    let _ = writeln!(x, "   <xmp:MetadataDate>{date}</xmp:MetadataDate>");
    let _ = writeln!(
        x,
        "   <xmp:CreatorTool>{}</xmp:CreatorTool>",
        escape(f.creator_tool)
    );
    x.push_str("  </rdf:Description>\n");

    x.push_str("  <rdf:Description rdf:about=\"\" xmlns:pdf=\"http://ns.adobe.com/pdf/1.3/\">\n");
    let _ = writeln!(x, "   <pdf:Producer>{}</pdf:Producer>", escape(f.producer));
    if let Some(keywords) = f.keywords {
        let _ = writeln!(x, "   <pdf:Keywords>{}</pdf:Keywords>", escape(keywords));
    }
    x.push_str("  </rdf:Description>\n");

    x.push_str(" </rdf:RDF>\n");
    x.push_str("</x:xmpmeta>\n");
    // Padding, so that the packet can be edited in place.
    for _ in 0..20 {
        x.push_str(&" ".repeat(99));
        x.push('\n');
    }
    x.push_str("<?xpacket end=\"w\"?>");
    x.into_bytes()
}

/// ISO 8601 with offset, to the second: `2024-05-06T07:08:09+00:00`.
fn xmp_date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

/// A PDF date, the same instant as [`xmp_date`]: `D:20240506070809+00'00'`.
fn pdf_date(t: DateTime<Utc>) -> String {
    t.format("D:%Y%m%d%H%M%S+00'00'").to_string()
}

/// A text fit for XMP and the information dictionary alike: control characters become spaces
/// (XML 1.0 forbids most of them, and line ends would be normalised), XML's non-characters are
/// dropped, the ends are trimmed; `None` when nothing is left.
fn clean(s: &str) -> Option<String> {
    let s: String = s
        .chars()
        .filter(|c| !matches!(c, '\u{fffe}' | '\u{ffff}'))
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// Escapes XML's special characters.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Obstacles
// ---------------------------------------------------------------------------------------------

/// Actions PDF/A-2 forbids (ISO 19005-2, 6.5.1).
const FORBIDDEN_ACTIONS: [&[u8]; 11] = [
    b"Launch",
    b"Sound",
    b"Movie",
    b"ResetForm",
    b"ImportData",
    b"Hide",
    b"SetOCGState",
    b"Rendition",
    b"Trans",
    b"GoTo3DView",
    b"JavaScript",
];

/// Named actions PDF/A-2 allows.
const ALLOWED_NAMED_ACTIONS: [&[u8]; 4] = [b"NextPage", b"PrevPage", b"FirstPage", b"LastPage"];

/// Annotation types of ISO 32000-1 that PDF/A-2 allows.
const ALLOWED_ANNOTATIONS: [&[u8]; 21] = [
    b"Text",
    b"Link",
    b"FreeText",
    b"Line",
    b"Square",
    b"Circle",
    b"Polygon",
    b"PolyLine",
    b"Highlight",
    b"Underline",
    b"Squiggly",
    b"StrikeOut",
    b"Stamp",
    b"Caret",
    b"Ink",
    b"Popup",
    b"Widget",
    b"PrinterMark",
    b"TrapNet",
    b"Watermark",
    b"Redact",
];

/// Obstacles found so far: each kind once, with where it was first seen and how often.
#[derive(Default)]
struct Findings {
    list: Vec<(String, Option<ObjectId>, usize)>,
}

impl Findings {
    fn add(&mut self, what: impl Into<String>, at: Option<ObjectId>) {
        let what = what.into();
        if let Some(entry) = self.list.iter_mut().find(|e| e.0 == what) {
            entry.2 += 1;
            if entry.1.is_none() {
                entry.1 = at;
            }
            return;
        }
        self.list.push((what, at, 1));
    }

    fn into_strings(self) -> Vec<String> {
        self.list
            .into_iter()
            .map(|(what, at, count)| match (at, count) {
                (None, _) => what,
                (Some((n, g)), 1) => format!("{what} (object {n} {g})"),
                (Some((n, g)), c) => format!("{what} (object {n} {g} and {} more)", c - 1),
            })
            .collect()
    }
}

/// Reasons why this PDF (e.g. a scanner's PDF that gets a text layer) cannot be made PDF/A-2b
/// by [`apply`]; empty = it can.
///
/// Looked at: encryption (also when lopdf opened it with the empty password); JavaScript
/// (`/Names /JavaScript`, `/JS`, `/S /JavaScript`, so also an `/OpenAction` script) and the
/// other actions PDF/A forbids, additional actions (`/AA`); embedded files; LZW and Crypt
/// filters and streams kept in external files; DeviceCMYK, DeviceN and Separation colour (in
/// objects and in content streams, where `k`/`K` and inline images count too); PostScript and
/// reference XObjects, the `PS` operator; alternate images and OPI; transfer functions and
/// halftones PDF/A forbids; fonts that are not embedded (Type 3 excepted); annotations of
/// forbidden types, not printed, hidden or without an appearance stream; forms that need
/// appearances or carry XFA; optional content configurations without a name or with `/AS`;
/// alternate presentations and `/Requirements`;
/// an existing output intent that is not an RGB PDF/A one; a version above 1.7; unreadable
/// content streams; too many objects.
pub fn obstacles(doc: &Document) -> Vec<String> {
    let mut f = Findings::default();
    if doc.trailer.has(b"Encrypt") || doc.encryption_state.is_some() {
        f.add("encrypted", None);
    }
    if version_above_1_7(&doc.version) {
        f.add(
            format!("PDF version {}", shown(doc.version.as_bytes())),
            None,
        );
    }
    if doc.max_id > MAX_OBJECT_NUMBER {
        f.add("more objects than PDF/A allows", None);
    }
    match doc.catalog() {
        Err(_) => f.add("no document catalog", None),
        Ok(catalog) => check_catalog(doc, catalog, &mut f),
    }
    for (id, object) in written(doc) {
        walk(doc, &mut f, id, object, 0);
    }
    check_pages(doc, &mut f);
    check_content_streams(doc, &mut f);
    f.into_strings()
}

/// The objects lopdf writes when it saves: not the cross-reference and object streams of the
/// file it read (it makes new ones).
fn written(doc: &Document) -> impl Iterator<Item = (ObjectId, &Object)> {
    doc.objects.iter().map(|(&id, o)| (id, o)).filter(|(_, o)| {
        !matches!(
            o.type_name(),
            Ok(b"XRef") | Ok(b"ObjStm") | Ok(b"Linearized")
        )
    })
}

/// A name or version from the file, fit for a message: printable ASCII, at most 32 characters.
fn shown(bytes: &[u8]) -> String {
    bytes
        .iter()
        .filter(|b| b.is_ascii_graphic())
        .take(32)
        .map(|&b| char::from(b))
        .collect()
}

/// True for versions above 1.7 (`2.0`); unreadable versions count as above.
fn version_above_1_7(version: &str) -> bool {
    let mut parts = version.trim().split('.');
    let major = parts.next().and_then(|p| p.parse::<u32>().ok());
    let minor = parts.next().and_then(|p| p.parse::<u32>().ok());
    match (major, minor) {
        (Some(1), Some(m)) => m > 7,
        (Some(0), Some(_)) => false,
        _ => true,
    }
}

fn check_catalog(doc: &Document, catalog: &Dictionary, f: &mut Findings) {
    let pages = catalog
        .get(b"Pages")
        .and_then(Object::as_reference)
        .and_then(|id| doc.get_dictionary(id));
    if pages.is_err() {
        f.add("no page tree", None);
    }
    if let Some(version) = catalog.get(b"Version").ok().and_then(|v| v.as_name().ok())
        && version_above_1_7(&String::from_utf8_lossy(version))
    {
        f.add(
            format!("PDF version {} in the catalog", shown(version)),
            None,
        );
    }
    if let Intents::Incompatible(why) = output_intents(doc) {
        f.add(why, None);
    }
    if let Some(oc) = deref_dict(doc, catalog.get(b"OCProperties").ok()) {
        let mut configs: Vec<&Dictionary> =
            deref_dict(doc, oc.get(b"D").ok()).into_iter().collect();
        if let Some(list) = deref(doc, oc.get(b"Configs").ok()).and_then(|o| o.as_array().ok()) {
            configs.extend(list.iter().filter_map(|c| deref_dict(doc, Some(c))));
        }
        for config in configs {
            let named = config
                .get(b"Name")
                .ok()
                .and_then(|n| n.as_str().ok())
                .is_some_and(|n| !n.is_empty());
            if !named || config.has(b"AS") {
                f.add(
                    "optional content configuration without /Name or with /AS",
                    None,
                );
            }
        }
    }
}

/// The output intents a document already has.
enum Intents {
    /// None (or an empty array).
    Absent,
    /// Only PDF/A intents with one RGB profile: kept as they are.
    Compatible,
    /// Anything else, and why.
    Incompatible(String),
}

fn output_intents(doc: &Document) -> Intents {
    let Ok(catalog) = doc.catalog() else {
        return Intents::Absent;
    };
    let Ok(value) = catalog.get(b"OutputIntents") else {
        return Intents::Absent;
    };
    let Some(list) = deref(doc, Some(value)).and_then(|o| o.as_array().ok()) else {
        return Intents::Incompatible("unreadable /OutputIntents".into());
    };
    if list.is_empty() {
        return Intents::Absent;
    }
    let mut profiles = BTreeSet::new();
    for intent in list {
        let Some(intent) = deref_dict(doc, Some(intent)) else {
            return Intents::Incompatible("unreadable output intent".into());
        };
        let subtype = intent.get(b"S").ok().and_then(|s| s.as_name().ok());
        if subtype != Some(b"GTS_PDFA1".as_slice()) {
            let s = shown(subtype.unwrap_or_default());
            return Intents::Incompatible(format!("an output intent /S /{s} that is not PDF/A"));
        }
        let profile = intent.get(b"DestOutputProfile").ok();
        let profile_id = profile.and_then(|p| p.as_reference().ok());
        let components = deref(doc, profile)
            .and_then(|p| p.as_stream().ok())
            .and_then(|s| s.dict.get(b"N").ok())
            .and_then(|n| n.as_i64().ok());
        match (profile_id, components) {
            (Some(id), Some(3)) => {
                profiles.insert(id);
            }
            _ => {
                return Intents::Incompatible(
                    "a PDF/A output intent without an RGB profile (/N 3)".into(),
                );
            }
        }
    }
    if profiles.len() > 1 {
        return Intents::Incompatible("output intents with different profiles".into());
    }
    Intents::Compatible
}

fn deref<'a>(doc: &'a Document, o: Option<&'a Object>) -> Option<&'a Object> {
    doc.dereference(o?).ok().map(|(_, o)| o)
}

fn deref_dict<'a>(doc: &'a Document, o: Option<&'a Object>) -> Option<&'a Dictionary> {
    match deref(doc, o)? {
        Object::Dictionary(d) => Some(d),
        Object::Stream(s) => Some(&s.dict),
        _ => None,
    }
}

fn name<'a>(d: &'a Dictionary, key: &[u8]) -> Option<&'a [u8]> {
    d.get(key).ok().and_then(|o| o.as_name().ok())
}

/// Visits an object and the direct objects inside it (indirect ones are visited on their own).
fn walk(doc: &Document, f: &mut Findings, id: ObjectId, o: &Object, depth: usize) {
    if depth > MAX_DEPTH {
        f.add("objects nested too deeply", Some(id));
        return;
    }
    match o {
        Object::Dictionary(d) => walk_dict(doc, f, id, d, depth),
        Object::Stream(s) => {
            check_stream(f, id, s);
            walk_dict(doc, f, id, &s.dict, depth);
        }
        Object::Array(items) => {
            if let Some(Object::Name(first)) = items.first()
                && matches!(first.as_slice(), b"DeviceN" | b"Separation")
            {
                f.add("DeviceN or Separation colour", Some(id));
            }
            for item in items {
                walk(doc, f, id, item, depth + 1);
            }
        }
        Object::Name(n) if n == b"DeviceCMYK" => f.add("DeviceCMYK colour", Some(id)),
        _ => {}
    }
}

fn walk_dict(doc: &Document, f: &mut Findings, id: ObjectId, d: &Dictionary, depth: usize) {
    check_dict(doc, f, id, d);
    for (key, value) in d.iter() {
        // An ICC-based colour space may name DeviceCMYK as its alternate: that is fine.
        if key == b"Alternate" && matches!(value, Object::Name(_)) {
            continue;
        }
        walk(doc, f, id, value, depth + 1);
    }
}

fn check_stream(f: &mut Findings, id: ObjectId, s: &Stream) {
    if let Ok(filters) = s.filters() {
        if filters.contains(&b"LZWDecode".as_slice()) {
            f.add("LZWDecode filter", Some(id));
        }
        if filters.contains(&b"Crypt".as_slice()) {
            f.add("Crypt filter", Some(id));
        }
    } else if s.dict.has(b"Filter") {
        f.add("unreadable stream /Filter", Some(id));
    }
    if s.dict.has(b"F") || s.dict.has(b"FFilter") || s.dict.has(b"FDecodeParms") {
        f.add("stream data in an external file", Some(id));
    }
}

fn check_dict(doc: &Document, f: &mut Findings, id: ObjectId, d: &Dictionary) {
    let at = Some(id);
    if d.has(b"JS") {
        f.add("JavaScript", at);
    }
    if d.has(b"JavaScript") {
        f.add("document-level JavaScript (/Names /JavaScript)", at);
    }
    match name(d, b"S") {
        Some(b"JavaScript") => f.add("JavaScript", at),
        Some(s) if FORBIDDEN_ACTIONS.contains(&s) => f.add(format!("{} action", shown(s)), at),
        Some(b"Named") => {
            let n = name(d, b"N").unwrap_or_default();
            if !ALLOWED_NAMED_ACTIONS.contains(&n) {
                f.add(format!("named action /{}", shown(n)), at);
            }
        }
        _ => {}
    }
    if d.has(b"AA") {
        f.add("additional actions (/AA)", at);
    }
    if d.has(b"EmbeddedFiles") || d.has(b"EF") || d.has_type(b"EmbeddedFile") {
        f.add("embedded files", at);
    }
    if d.has(b"AlternatePresentations") || d.has(b"PresSteps") {
        f.add("alternate presentations", at);
    }
    if d.has_type(b"Catalog") && d.has(b"Requirements") {
        f.add("document requirements (/Requirements)", at);
    }
    if d.has_type(b"Font") {
        check_font(doc, f, id, d);
    }
    // Graphics states and halftones.
    for key in [b"TR".as_slice(), b"TR2".as_slice()] {
        if let Ok(tr) = d.get(key)
            && tr.as_name().ok() != Some(b"Default".as_slice())
        {
            f.add(
                format!("transfer function (/{})", String::from_utf8_lossy(key)),
                at,
            );
        }
    }
    if d.has(b"HTO") {
        f.add("halftone origin (/HTO)", at);
    }
    if let Ok(t) = d.get(b"HalftoneType").and_then(Object::as_i64)
        && t != 1
        && t != 5
    {
        f.add(format!("halftone type {t}"), at);
    }
    if d.has(b"HalftoneName") {
        f.add("named halftone", at);
    }
    // XObjects.
    let subtype = name(d, b"Subtype");
    if subtype == Some(b"PS".as_slice())
        || name(d, b"Subtype2") == Some(b"PS".as_slice())
        || (subtype == Some(b"Form".as_slice()) && d.has(b"PS"))
    {
        f.add("PostScript XObject", at);
    }
    if subtype == Some(b"Form".as_slice()) && d.has(b"Ref") {
        f.add("reference XObject", at);
    }
    if subtype == Some(b"Image".as_slice()) && d.has(b"Alternates") {
        f.add("alternate images", at);
    }
    if d.has(b"OPI") {
        f.add("OPI", at);
    }
    // Forms.
    if matches!(d.get(b"NeedAppearances"), Ok(Object::Boolean(true))) {
        f.add("form fields without appearances (/NeedAppearances)", at);
    }
    if d.has(b"XFA") {
        f.add("XFA form", at);
    }
}

fn check_font(doc: &Document, f: &mut Findings, id: ObjectId, font: &Dictionary) {
    match name(font, b"Subtype") {
        Some(b"Type3") | Some(b"Type0") => return,
        _ => {}
    }
    let embedded = deref_dict(doc, font.get(b"FontDescriptor").ok())
        .is_some_and(|d| d.has(b"FontFile") || d.has(b"FontFile2") || d.has(b"FontFile3"));
    if !embedded {
        let base = name(font, b"BaseFont").unwrap_or(b"?");
        f.add(format!("font {} not embedded", shown(base)), Some(id));
    }
}

/// The annotation flag Print.
const PRINT_FLAG: i64 = 4;
/// The annotation flags Invisible, Hidden, NoView and ToggleNoView.
const NOT_SHOWN: i64 = 1 | 2 | 32 | 256;

/// Annotations (found through the pages, as they often lack `/Type /Annot`).
fn check_pages(doc: &Document, f: &mut Findings) {
    let pages: BTreeSet<ObjectId> = doc.page_iter().collect();
    for page in pages {
        let Ok(dict) = doc.get_dictionary(page) else {
            continue;
        };
        let Some(annots) = deref(doc, dict.get(b"Annots").ok()).and_then(|a| a.as_array().ok())
        else {
            continue;
        };
        for annot in annots {
            let reference = annot.as_reference().ok();
            if let Some(a) = deref_dict(doc, Some(annot)) {
                check_annotation(doc, f, reference.or(Some(page)), reference.is_some(), a);
            }
        }
    }
}

/// Checks one annotation; `indirect` when it is an object of its own (which `apply` can fix).
fn check_annotation(
    doc: &Document,
    f: &mut Findings,
    at: Option<ObjectId>,
    indirect: bool,
    a: &Dictionary,
) {
    let subtype = name(a, b"Subtype").unwrap_or_default();
    if !ALLOWED_ANNOTATIONS.contains(&subtype) {
        f.add(format!("annotation of type /{}", shown(subtype)), at);
        return;
    }
    if subtype == b"Popup" {
        return;
    }
    let flags = a.get(b"F").and_then(Object::as_i64).unwrap_or(0);
    if flags & NOT_SHOWN != 0 {
        f.add("hidden annotation", at);
    }
    if subtype == b"Link" && indirect {
        // A link has no appearance: `apply` sets its print flag.
        return;
    }
    if flags & PRINT_FLAG == 0 {
        f.add("annotation not printed", at);
    }
    if subtype == b"Link" {
        return;
    }
    let zero_area = deref(doc, a.get(b"Rect").ok())
        .and_then(|r| r.as_array().ok())
        .map(|r| r.iter().map(number).collect::<Vec<_>>())
        .is_some_and(|r| {
            matches!(r.as_slice(), [Some(x1), Some(y1), Some(x2), Some(y2)] if x1 == x2 || y1 == y2)
        });
    if zero_area {
        return;
    }
    match deref_dict(doc, a.get(b"AP").ok()) {
        None => f.add("annotation without an appearance stream", at),
        Some(ap) => {
            if !ap.has(b"N") || ap.len() > 1 {
                f.add("annotation appearance other than /N", at);
            }
        }
    }
}

fn number(o: &Object) -> Option<f64> {
    match o {
        Object::Integer(i) => Some(*i as f64),
        Object::Real(r) => Some(f64::from(*r)),
        _ => None,
    }
}

/// Page contents, form XObjects, tiling patterns and Type 3 glyphs: read for CMYK colour
/// operators, the `PS` operator and inline images.
fn check_content_streams(doc: &Document, f: &mut Findings) {
    let pages: BTreeSet<ObjectId> = doc.page_iter().collect();
    for page in pages {
        let mut content = Vec::new();
        for id in doc.get_page_contents(page) {
            let Ok(stream) = doc.get_object(id).and_then(Object::as_stream) else {
                continue;
            };
            match plain_content(stream) {
                Some(bytes) => {
                    content.extend_from_slice(&bytes);
                    content.push(b'\n');
                }
                None => f.add("unreadable content stream", Some(id)),
            }
        }
        scan_content(f, page, &content);
    }
    let mut glyphs = BTreeSet::new();
    for (_, object) in written(doc) {
        if let Some(d) = deref_dict(doc, Some(object))
            && name(d, b"Subtype") == Some(b"Type3".as_slice())
            && let Some(procs) = deref_dict(doc, d.get(b"CharProcs").ok())
        {
            glyphs.extend(procs.iter().filter_map(|(_, p)| p.as_reference().ok()));
        }
    }
    for (id, object) in written(doc) {
        let Object::Stream(stream) = object else {
            continue;
        };
        let is_form = name(&stream.dict, b"Subtype") == Some(b"Form".as_slice());
        let is_tiling = matches!(stream.dict.get(b"PatternType"), Ok(Object::Integer(1)));
        if !(is_form || is_tiling || glyphs.contains(&id)) {
            continue;
        }
        match plain_content(stream) {
            Some(bytes) => scan_content(f, id, &bytes),
            None => f.add("unreadable content stream", Some(id)),
        }
    }
}

/// The stream's data with its filters undone; `None` when lopdf cannot undo them, or when the
/// predictor parameters are beyond what a content stream needs (lopdf would work on them for a
/// very long time).
fn plain_content(stream: &Stream) -> Option<Cow<'_, [u8]>> {
    if stream.dict.has(b"Filter") {
        let parms = stream
            .dict
            .get(b"DecodeParms")
            .and_then(Object::as_dict)
            .ok();
        if let Some(parms) = parms {
            let get = |key: &[u8], default: i64| {
                parms.get(key).and_then(Object::as_i64).unwrap_or(default)
            };
            let sane = (1..=32).contains(&get(b"Colors", 1))
                && (1..=16).contains(&get(b"BitsPerComponent", 8))
                && (1..=1 << 20).contains(&get(b"Columns", 1));
            if !sane {
                return None;
            }
        }
        stream.decompressed_content().ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(stream.content.as_slice()))
    }
}

/// A token of a content stream, as far as [`scan_content`] cares.
#[derive(Debug, PartialEq)]
enum Token {
    /// A name (without the slash, `#xx` escapes resolved).
    Name(Vec<u8>),
    /// An operator or a keyword (`true`, `false`, `null`).
    Keyword(Vec<u8>),
    /// Anything else: numbers, strings, brackets.
    Other,
}

fn is_white(b: u8) -> bool {
    matches!(b, 0 | b'\t' | b'\n' | 0x0C | b'\r' | b' ')
}

fn is_delimiter(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
    )
}

/// Reads the next token from `data` at `*pos`; `None` at the end.
fn next_token(data: &[u8], pos: &mut usize) -> Option<Token> {
    loop {
        let &b = data.get(*pos)?;
        if is_white(b) {
            *pos += 1;
        } else if b == b'%' {
            while data.get(*pos).is_some_and(|&c| c != b'\n' && c != b'\r') {
                *pos += 1;
            }
        } else {
            break;
        }
    }
    let start = *pos;
    let &b = data.get(start)?;
    *pos += 1;
    match b {
        b'(' => {
            let mut depth = 1usize;
            while let Some(&c) = data.get(*pos) {
                *pos += 1;
                match c {
                    b'\\' => *pos += 1,
                    b'(' => depth += 1,
                    b')' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
            }
            Some(Token::Other)
        }
        b'<' => {
            if data.get(*pos) == Some(&b'<') {
                *pos += 1;
            } else {
                while data.get(*pos).is_some_and(|&c| c != b'>') {
                    *pos += 1;
                }
                *pos += 1;
            }
            Some(Token::Other)
        }
        b'>' => {
            if data.get(*pos) == Some(&b'>') {
                *pos += 1;
            }
            Some(Token::Other)
        }
        b'/' => {
            let mut n = Vec::new();
            while let Some(&c) = data.get(*pos) {
                if is_white(c) || is_delimiter(c) {
                    break;
                }
                *pos += 1;
                let hex = data
                    .get(*pos..*pos + 2)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match (c, hex) {
                    (b'#', Some(v)) => {
                        n.push(v);
                        *pos += 2;
                    }
                    _ => n.push(c),
                }
            }
            Some(Token::Name(n))
        }
        b')' | b'[' | b']' | b'{' | b'}' => Some(Token::Other),
        _ => {
            while data
                .get(*pos)
                .is_some_and(|&c| !is_white(c) && !is_delimiter(c))
            {
                *pos += 1;
            }
            let word = data.get(start..*pos).unwrap_or_default();
            if b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.') {
                Some(Token::Other)
            } else {
                Some(Token::Keyword(word.to_vec()))
            }
        }
    }
}

/// Looks through one content stream for what PDF/A forbids.
fn scan_content(f: &mut Findings, id: ObjectId, data: &[u8]) {
    let at = Some(id);
    let mut pos = 0;
    let mut previous = Token::Other;
    while let Some(token) = next_token(data, &mut pos) {
        if let Token::Keyword(op) = &token {
            match op.as_slice() {
                b"k" | b"K" => f.add("DeviceCMYK colour (k/K operator)", at),
                b"cs" | b"CS" if previous == Token::Name(b"DeviceCMYK".to_vec()) => {
                    f.add("DeviceCMYK colour", at)
                }
                b"PS" => f.add("PostScript operator", at),
                b"BI" => scan_inline_image(f, id, data, &mut pos),
                _ => {}
            }
        }
        previous = token;
    }
}

/// Reads an inline image's dictionary (after `BI`) and skips its data (up to `EI`).
fn scan_inline_image(f: &mut Findings, id: ObjectId, data: &[u8], pos: &mut usize) {
    let at = Some(id);
    let mut previous = Token::Other;
    while let Some(token) = next_token(data, pos) {
        match &token {
            Token::Keyword(k) if k == b"ID" => break,
            Token::Name(n) if n == b"CMYK" || n == b"DeviceCMYK" => {
                f.add("DeviceCMYK colour (inline image)", at)
            }
            Token::Name(n) if n == b"LZW" || n == b"LZWDecode" => {
                f.add("LZWDecode filter (inline image)", at)
            }
            Token::Keyword(k)
                if k == b"true"
                    && (previous == Token::Name(b"I".to_vec())
                        || previous == Token::Name(b"Interpolate".to_vec())) =>
            {
                f.add("interpolated inline image", at)
            }
            _ => {}
        }
        previous = token;
    }
    // The data: one white-space byte after `ID`, then up to `EI` between white space.
    let mut i = *pos + 1;
    while i < data.len() {
        if data.get(i..i + 2) == Some(b"EI".as_slice())
            && data.get(i - 1).is_some_and(|&c| is_white(c))
            && data.get(i + 2).is_none_or(|&c| is_white(c))
        {
            *pos = i + 2;
            return;
        }
        i += 1;
    }
    *pos = data.len();
}

// ---------------------------------------------------------------------------------------------
// Apply
// ---------------------------------------------------------------------------------------------

/// Makes `doc` PDF/A-2b: XMP metadata stream on the catalog (Type/Metadata Subtype/XML, NOT
/// compressed), an OutputIntent (/S /GTS_PDFA1, OutputConditionIdentifier "sRGB
/// IEC61966-2.1", DestOutputProfile = the ICC stream with /N 3), the document information
/// dictionary removed or kept consistent with the XMP, a trailer /ID, version 1.7. Call only
/// when `obstacles` is empty.
///
/// In detail:
/// - the title is `title`, else the one the information dictionary had; its author, subject,
///   keywords and creator are kept; the producer becomes [`PRODUCER`], both dates `now`. The
///   information dictionary is rewritten with exactly these entries (others are dropped) and
///   the XMP says the same;
/// - an existing metadata stream or information dictionary is replaced in place (same object
///   number) when nothing else refers to it, otherwise a new object is added; existing PDF/A
///   output intents with an RGB profile are kept, otherwise the sRGB intent is added;
/// - `/ID`: a new 16-byte identifier (SHA-256 of the time, the title and the objects' stream
///   data); a document that already had an `/ID` keeps its first (permanent) part, as ISO
///   32000-1 asks, and gets the new one as the second; otherwise both parts are the new one;
/// - images with `/Interpolate true` get `false`; link annotations that are not hidden get the
///   print flag (they have no appearance to print);
/// - the header's binary comment is set when the document has no valid one.
///
/// Errors (nothing is changed then) when the document is encrypted, has no catalog or an
/// output intent that is not compatible.
pub fn apply(doc: &mut Document, title: Option<&str>, now: DateTime<Utc>) -> Result<(), String> {
    if doc.trailer.has(b"Encrypt") || doc.encryption_state.is_some() {
        return Err("the PDF is encrypted".into());
    }
    let root = doc
        .trailer
        .get(b"Root")
        .and_then(Object::as_reference)
        .map_err(|_| "the PDF has no document catalog (/Root)".to_string())?;
    if doc.get_dictionary(root).is_err() {
        return Err("the document catalog is not a dictionary".into());
    }
    let keep_intents = match output_intents(doc) {
        Intents::Absent => false,
        Intents::Compatible => true,
        Intents::Incompatible(why) => return Err(why),
    };

    // What the metadata says.
    let old = info_texts(doc);
    let title = title.and_then(clean).or(old.title);
    let creator = old.creator.unwrap_or_else(|| CREATOR_TOOL.to_string());
    let fields = Fields {
        title: title.as_deref(),
        author: old.author.as_deref(),
        subject: old.subject.as_deref(),
        keywords: old.keywords.as_deref(),
        creator_tool: &creator,
        producer: PRODUCER,
        date: now,
    };
    let file_id = file_identifier(doc, &fields);
    let metadata = Stream::new(
        dictionary! { "Type" => "Metadata", "Subtype" => "XML" },
        xmp_packet(&fields),
    )
    .with_compression(false);
    let info = info_dictionary(&fields);

    // The metadata stream, in place of an old one that nothing else uses.
    let old_metadata = doc
        .catalog()
        .ok()
        .and_then(|c| c.get(b"Metadata").ok())
        .and_then(|m| m.as_reference().ok())
        .filter(|id| matches!(doc.objects.get(id), Some(Object::Stream(_))))
        .filter(|id| references(doc, *id) == 1);
    let metadata_id = match old_metadata {
        Some(id) => {
            doc.objects.insert(id, Object::Stream(metadata));
            id
        }
        None => doc.add_object(metadata),
    };

    // The output intent.
    let intent = if keep_intents {
        None
    } else {
        let mut profile = Stream::new(dictionary! { "N" => 3 }, srgb_icc());
        let _ = profile.compress();
        let profile = doc.add_object(profile);
        let condition = || Object::string_literal(SRGB_CONDITION);
        Some(doc.add_object(dictionary! {
            "Type" => "OutputIntent",
            "S" => "GTS_PDFA1",
            "OutputConditionIdentifier" => condition(),
            "OutputCondition" => condition(),
            "Info" => condition(),
            "RegistryName" => Object::string_literal("http://www.color.org"),
            "DestOutputProfile" => profile,
        }))
    };

    let catalog = doc
        .catalog_mut()
        .map_err(|_| "the document catalog is not a dictionary".to_string())?;
    catalog.set("Metadata", metadata_id);
    if let Some(intent) = intent {
        catalog.set("OutputIntents", vec![Object::Reference(intent)]);
    }

    // The information dictionary, in place of an old one that nothing else uses.
    let old_info = doc
        .trailer
        .get(b"Info")
        .and_then(Object::as_reference)
        .ok()
        .filter(|id| matches!(doc.objects.get(id), Some(Object::Dictionary(_))))
        .filter(|id| references(doc, *id) == 1);
    match old_info {
        Some(id) => {
            doc.objects.insert(id, Object::Dictionary(info));
        }
        None => {
            let id = doc.add_object(info);
            doc.trailer.set("Info", id);
        }
    }

    // The file identifier.
    let permanent = doc
        .trailer
        .get(b"ID")
        .and_then(Object::as_array)
        .ok()
        .and_then(|parts| parts.first())
        .and_then(|first| first.as_str().ok())
        .filter(|first| !first.is_empty())
        .map(<[u8]>::to_vec);
    let id_string = |bytes: Vec<u8>| Object::String(bytes, StringFormat::Hexadecimal);
    doc.trailer.set(
        "ID",
        vec![
            id_string(permanent.unwrap_or_else(|| file_id.clone())),
            id_string(file_id),
        ],
    );

    // Links (no appearance of their own) are marked for printing, as PDF/A wants.
    let links: BTreeSet<ObjectId> = doc
        .page_iter()
        .filter_map(|page| doc.get_dictionary(page).ok())
        .filter_map(|page| deref(doc, page.get(b"Annots").ok()))
        .filter_map(|annots| annots.as_array().ok())
        .flatten()
        .filter_map(|annot| annot.as_reference().ok())
        .collect();
    for id in links {
        if let Some(Object::Dictionary(a)) = doc.objects.get_mut(&id)
            && name(a, b"Subtype") == Some(b"Link".as_slice())
        {
            let flags = a.get(b"F").and_then(Object::as_i64).unwrap_or(0);
            if flags & (PRINT_FLAG | NOT_SHOWN) == 0 {
                a.set("F", flags | PRINT_FLAG);
            }
        }
    }

    // Images may not ask for interpolation.
    for object in doc.objects.values_mut() {
        if let Object::Stream(s) = object
            && name(&s.dict, b"Subtype") == Some(b"Image".as_slice())
            && matches!(s.dict.get(b"Interpolate"), Ok(Object::Boolean(true)))
        {
            s.dict.set("Interpolate", false);
        }
    }

    doc.version = "1.7".into();
    if doc.binary_mark.len() < 4 || doc.binary_mark.iter().any(|&b| b < 128) {
        doc.binary_mark = BINARY_MARK.to_vec();
    }
    Ok(())
}

/// How often the trailer and the objects refer to `target`.
fn references(doc: &Document, target: ObjectId) -> usize {
    fn count(o: &Object, target: ObjectId, depth: usize) -> usize {
        if depth > MAX_DEPTH {
            return 0;
        }
        match o {
            Object::Reference(id) => usize::from(*id == target),
            Object::Array(items) => items.iter().map(|i| count(i, target, depth + 1)).sum(),
            Object::Dictionary(d) => d.iter().map(|(_, v)| count(v, target, depth + 1)).sum(),
            Object::Stream(s) => s
                .dict
                .iter()
                .map(|(_, v)| count(v, target, depth + 1))
                .sum(),
            _ => 0,
        }
    }
    let in_trailer: usize = doc.trailer.iter().map(|(_, v)| count(v, target, 0)).sum();
    in_trailer
        + written(doc)
            .map(|(_, o)| count(o, target, 0))
            .sum::<usize>()
}

/// Texts of the information dictionary that are kept.
#[derive(Default)]
struct InfoTexts {
    title: Option<String>,
    author: Option<String>,
    subject: Option<String>,
    keywords: Option<String>,
    creator: Option<String>,
}

fn info_texts(doc: &Document) -> InfoTexts {
    let Some(info) = deref_dict(doc, doc.trailer.get(b"Info").ok()) else {
        return InfoTexts::default();
    };
    let text = |key: &[u8]| {
        deref(doc, info.get(key).ok())
            .and_then(|o| lopdf::decode_text_string(o).ok())
            .and_then(|s| clean(&s))
    };
    InfoTexts {
        title: text(b"Title"),
        author: text(b"Author"),
        subject: text(b"Subject"),
        keywords: text(b"Keywords"),
        creator: text(b"Creator"),
    }
}

/// The information dictionary saying what the XMP packet says.
fn info_dictionary(f: &Fields<'_>) -> Dictionary {
    let mut info = Dictionary::new();
    for (key, value) in [
        ("Title", f.title),
        ("Author", f.author),
        ("Subject", f.subject),
        ("Keywords", f.keywords),
        ("Creator", Some(f.creator_tool)),
        ("Producer", Some(f.producer)),
    ] {
        if let Some(value) = value {
            info.set(key, lopdf::text_string(value));
        }
    }
    let date = pdf_date(f.date);
    info.set("CreationDate", Object::string_literal(date.clone()));
    info.set("ModDate", Object::string_literal(date));
    info
}

/// 16 bytes of SHA-256 over the time, the title and the document's stream data.
fn file_identifier(doc: &Document, f: &Fields<'_>) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"poststelle PDF/A file identifier\0");
    h.update(f.date.timestamp().to_be_bytes());
    h.update(f.date.timestamp_subsec_nanos().to_be_bytes());
    h.update(f.title.unwrap_or_default().as_bytes());
    h.update([0]);
    for (&(number, generation), object) in &doc.objects {
        h.update(number.to_be_bytes());
        h.update(generation.to_be_bytes());
        if let Object::Stream(s) = object {
            h.update((s.content.len() as u64).to_be_bytes());
            h.update(&s.content);
        }
    }
    h.finalize().iter().take(16).copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::process::Command;

    fn be32(b: &[u8], at: usize) -> u32 {
        let mut w = [0u8; 4];
        w.copy_from_slice(&b[at..at + 4]);
        u32::from_be_bytes(w)
    }

    fn s15(b: &[u8], at: usize) -> f64 {
        f64::from(be32(b, at) as i32) / 65536.0
    }

    /// The tag table: (signature, offset, size).
    fn tags(icc: &[u8]) -> Vec<([u8; 4], usize, usize)> {
        let count = be32(icc, 128) as usize;
        (0..count)
            .map(|i| {
                let at = 132 + 12 * i;
                let mut sig = [0u8; 4];
                sig.copy_from_slice(&icc[at..at + 4]);
                (sig, be32(icc, at + 4) as usize, be32(icc, at + 8) as usize)
            })
            .collect()
    }

    fn tag<'a>(icc: &'a [u8], sig: &[u8; 4]) -> &'a [u8] {
        let (_, offset, size) = tags(icc)
            .into_iter()
            .find(|t| &t.0 == sig)
            .unwrap_or_else(|| panic!("no tag {}", String::from_utf8_lossy(sig)));
        &icc[offset..offset + size]
    }

    #[test]
    fn icc_header() {
        let icc = srgb_icc();
        assert_eq!(be32(&icc, 0) as usize, icc.len());
        assert_eq!(icc.len() % 4, 0);
        assert_eq!(be32(&icc, 8), 0x0210_0000);
        assert_eq!(&icc[12..16], b"mntr");
        assert_eq!(&icc[16..20], b"RGB ");
        assert_eq!(&icc[20..24], b"XYZ ");
        assert_eq!(&icc[36..40], b"acsp");
        assert_eq!(be32(&icc, 64), 0, "rendering intent");
        // The PCS illuminant as ICC.1 spells it.
        assert_eq!(be32(&icc, 68), 0x0000_F6D6);
        assert_eq!(be32(&icc, 72), 0x0001_0000);
        assert_eq!(be32(&icc, 76), 0x0000_D32D);
        assert!(icc[84..128].iter().all(|&b| b == 0));
        assert_eq!(srgb_icc(), icc, "the same bytes every time");
    }

    #[test]
    fn icc_tags_lie_inside_and_aligned() {
        let icc = srgb_icc();
        let tags = tags(&icc);
        let names: BTreeSet<&[u8]> = tags.iter().map(|t| t.0.as_slice()).collect();
        for want in [
            b"desc", b"cprt", b"wtpt", b"rXYZ", b"gXYZ", b"bXYZ", b"rTRC", b"gTRC", b"bTRC",
        ] {
            assert!(
                names.contains(want.as_slice()),
                "{}",
                String::from_utf8_lossy(want)
            );
        }
        let data_start = 128 + 4 + 12 * tags.len();
        for (sig, offset, size) in &tags {
            let sig = String::from_utf8_lossy(sig);
            assert_eq!(offset % 4, 0, "{sig} aligned");
            assert!(*offset >= data_start, "{sig} after the tag table");
            assert!(offset + size <= icc.len(), "{sig} inside the profile");
            assert!(*size >= 12, "{sig} has data");
        }
        // Distinct blocks do not overlap (the TRCs share one).
        let mut blocks: Vec<(usize, usize)> = tags.iter().map(|t| (t.1, t.2)).collect();
        blocks.sort();
        blocks.dedup();
        for pair in blocks.windows(2) {
            assert!(pair[0].0 + pair[0].1 <= pair[1].0, "{pair:?}");
        }
        let trc = |s: &[u8; 4]| tags.iter().find(|t| &t.0 == s).map(|t| (t.1, t.2));
        assert_eq!(trc(b"rTRC"), trc(b"gTRC"));
        assert_eq!(trc(b"rTRC"), trc(b"bTRC"));

        let desc = tag(&icc, b"desc");
        assert_eq!(&desc[..4], b"desc");
        assert_eq!(be32(desc, 8) as usize, SRGB_CONDITION.len() + 1);
        assert_eq!(
            &desc[12..12 + SRGB_CONDITION.len() + 1],
            b"sRGB IEC61966-2.1\0"
        );
        let unicode_at = 12 + SRGB_CONDITION.len() + 1;
        let unicode_count = be32(desc, unicode_at + 4) as usize;
        assert_eq!(unicode_count, SRGB_CONDITION.len() + 1);
        let script_at = unicode_at + 8 + 2 * unicode_count;
        assert_eq!(desc.len(), script_at + 3 + 67, "ScriptCode part complete");
        assert_eq!(&tag(&icc, b"cprt")[..4], b"text");

        let wtpt = tag(&icc, b"wtpt");
        assert_eq!(&wtpt[..4], b"XYZ ");
        assert_eq!(be32(wtpt, 8), 0x0000_F6D6);
        assert_eq!(be32(wtpt, 12), 0x0001_0000);
        assert_eq!(be32(wtpt, 16), 0x0000_D32D);
        for (sig, want) in [
            (b"rXYZ", [0.4361, 0.2225, 0.0139]),
            (b"gXYZ", [0.3851, 0.7169, 0.0971]),
            (b"bXYZ", [0.1431, 0.0606, 0.7141]),
        ] {
            let t = tag(&icc, sig);
            assert_eq!(&t[..4], b"XYZ ");
            for (i, w) in want.iter().enumerate() {
                let got = s15(t, 8 + 4 * i);
                assert!((got - w).abs() < 0.0001, "{got} vs {w}");
            }
        }
        // The primaries add up to the white point (D50).
        for (i, white) in D50.iter().enumerate() {
            let sum: f64 = [b"rXYZ", b"gXYZ", b"bXYZ"]
                .iter()
                .map(|s| s15(tag(&icc, s), 8 + 4 * i))
                .sum();
            assert!((sum - white).abs() < 0.001, "{sum}");
        }
    }

    #[test]
    fn icc_curve_is_the_srgb_function() {
        let icc = srgb_icc();
        let curve = tag(&icc, b"rTRC");
        assert_eq!(&curve[..4], b"curv");
        let n = be32(curve, 8) as usize;
        assert_eq!(n, TRC_POINTS);
        assert_eq!(curve.len(), 12 + 2 * n);
        let samples: Vec<u16> = curve[12..]
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(samples.first(), Some(&0));
        assert_eq!(samples.last(), Some(&65535));
        assert!(
            samples.windows(2).all(|w| w[0] < w[1]),
            "strictly increasing"
        );
        // sRGB 50 % grey is about 21.4 % linear light.
        let mid = f64::from(samples[512]) / 65535.0;
        assert!((mid - srgb_to_linear(512.0 / 1023.0)).abs() < 1e-4);
        assert!((srgb_to_linear(0.5) - 0.214).abs() < 0.001);
    }

    fn when() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9)
            .single()
            .unwrap_or_default()
    }

    /// Reads the packet with quick-xml: it must be well-formed.
    fn well_formed(xml: &[u8]) {
        let mut reader = quick_xml::Reader::from_reader(xml);
        let mut buf = Vec::new();
        let mut depth = 0i32;
        loop {
            match reader.read_event_into(&mut buf) {
                Ok(quick_xml::events::Event::Start(_)) => depth += 1,
                Ok(quick_xml::events::Event::End(_)) => depth -= 1,
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => {}
                Err(e) => panic!("XMP not well-formed: {e}"),
            }
            buf.clear();
        }
        assert_eq!(depth, 0);
    }

    #[test]
    fn xmp_packet_says_pdfa_2b() {
        let x = xmp(Some("Brief \"A\" & <B>\r\nzwei"), "poststelle 1", when());
        well_formed(&x);
        let s = String::from_utf8(x).unwrap_or_default();
        assert!(s.starts_with("<?xpacket begin=\"\u{feff}\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>"));
        assert!(s.ends_with("<?xpacket end=\"w\"?>"));
        assert!(s.contains("<pdfaid:part>2</pdfaid:part>"));
        assert!(s.contains("<pdfaid:conformance>B</pdfaid:conformance>"));
        assert!(s.contains("<dc:format>application/pdf</dc:format>"));
        assert!(s.contains(
            "<rdf:li xml:lang=\"x-default\">Brief &quot;A&quot; &amp; &lt;B&gt;  zwei</rdf:li>"
        ));
        assert!(s.contains("<xmp:CreateDate>2024-05-06T07:08:09+00:00</xmp:CreateDate>"));
        assert!(s.contains("<xmp:ModifyDate>2024-05-06T07:08:09+00:00</xmp:ModifyDate>"));
        assert!(s.contains("<xmp:MetadataDate>2024-05-06T07:08:09+00:00</xmp:MetadataDate>"));
        assert!(s.contains("<xmp:CreatorTool>poststelle</xmp:CreatorTool>"));
        assert!(s.contains("<pdf:Producer>poststelle 1</pdf:Producer>"));
        let untitled = String::from_utf8(xmp(None, "p", when())).unwrap_or_default();
        assert!(!untitled.contains("dc:title"));
        well_formed(untitled.as_bytes());
    }

    /// One page with a small DeviceGray image drawn on it.
    fn image_page_document() -> Document {
        let mut doc = Document::with_version("1.5");
        let pixels: Vec<u8> = (0..64u8).map(|i| i * 4).collect();
        let mut image = Stream::new(
            dictionary! {
                "Type" => "XObject",
                "Subtype" => "Image",
                "Width" => 8,
                "Height" => 8,
                "ColorSpace" => "DeviceGray",
                "BitsPerComponent" => 8,
                "Interpolate" => true,
            },
            pixels,
        );
        let _ = image.compress();
        let image = doc.add_object(image);
        let mut content = Stream::new(
            Dictionary::new(),
            b"q 200 0 0 200 50 50 cm /Im0 Do Q\nBT 3 Tr ET".to_vec(),
        );
        let _ = content.compress();
        let content = doc.add_object(content);
        let pages = doc.new_object_id();
        let page = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages,
            "MediaBox" => vec![0.into(), 0.into(), 300.into(), 300.into()],
            "Resources" => dictionary! {
                "XObject" => dictionary! { "Im0" => image },
            },
            "Contents" => content,
        });
        doc.objects.insert(
            pages,
            Object::Dictionary(dictionary! {
                "Type" => "Pages",
                "Kids" => vec![page.into()],
                "Count" => 1,
            }),
        );
        let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages });
        doc.trailer.set("Root", catalog);
        let info = doc.add_object(dictionary! {
            "Author" => lopdf::text_string("Jürgen Müller"),
            "Producer" => Object::string_literal("Scanner 3000"),
            "Trapped" => "False",
        });
        doc.trailer.set("Info", info);
        doc
    }

    fn save(doc: &mut Document) -> Vec<u8> {
        let mut out = Vec::new();
        doc.save_to(&mut out)
            .unwrap_or_else(|e| panic!("save: {e}"));
        out
    }

    fn qpdf(args: &[&str], file: &std::path::Path) -> std::process::Output {
        Command::new("qpdf")
            .args(args)
            .arg(file)
            .output()
            .unwrap_or_else(|e| panic!("qpdf (install it: deploy/setup.sh): {e}"))
    }

    /// An object of `qpdf --json` (v2) by reference (`"3 0 R"`).
    fn json_object<'a>(json: &'a serde_json::Value, reference: &str) -> &'a serde_json::Value {
        &json["qpdf"][1][format!("obj:{reference}")]
    }

    #[test]
    fn apply_makes_a_pdf_qpdf_accepts() {
        let mut doc = image_page_document();
        assert_eq!(obstacles(&doc), Vec::<String>::new());
        apply(&mut doc, Some("Posteingang 42 – Bauamt"), when()).unwrap_or_else(|e| panic!("{e}"));
        let bytes = save(&mut doc);
        assert!(bytes.starts_with(b"%PDF-1.7\n%"));
        assert!(bytes[10..14].iter().all(|&b| b > 127), "binary comment");
        assert_eq!(bytes[14], b'\n');
        // The XMP is stored as it is (no filter), so it can be read in the file.
        let raw = String::from_utf8_lossy(&bytes);
        assert!(raw.contains("<pdfaid:part>2</pdfaid:part>"));
        assert!(raw.contains("Posteingang 42 – Bauamt"));

        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("pdfa.pdf");
        std::fs::write(&file, &bytes).unwrap_or_else(|e| panic!("{e}"));
        let check = qpdf(&["--check"], &file);
        assert!(
            check.status.success(),
            "qpdf --check: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let out = qpdf(&["--json", "--json-stream-data=inline"], &file);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("qpdf json: {e}"));
        let trailer = &json["qpdf"][1]["trailer"]["value"];
        let root = trailer["/Root"].as_str().unwrap_or_default();
        let catalog = &json_object(&json, root)["value"];
        assert_eq!(catalog["/Type"], "/Catalog");

        let intents = catalog["/OutputIntents"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(intents.len(), 1);
        let intent = &json_object(&json, intents[0].as_str().unwrap_or_default())["value"];
        assert_eq!(intent["/S"], "/GTS_PDFA1");
        assert_eq!(intent["/OutputConditionIdentifier"], "u:sRGB IEC61966-2.1");
        let profile = json_object(
            &json,
            intent["/DestOutputProfile"].as_str().unwrap_or_default(),
        );
        assert_eq!(profile["stream"]["dict"]["/N"], 3);
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let icc = b64
            .decode(profile["stream"]["data"].as_str().unwrap_or_default())
            .unwrap_or_default();
        assert_eq!(icc, srgb_icc(), "the profile decodes to the generated one");

        let metadata = json_object(&json, catalog["/Metadata"].as_str().unwrap_or_default());
        let dict = &metadata["stream"]["dict"];
        assert_eq!(dict["/Type"], "/Metadata");
        assert_eq!(dict["/Subtype"], "/XML");
        assert!(dict.get("/Filter").is_none(), "metadata not compressed");
        let xmp = b64
            .decode(metadata["stream"]["data"].as_str().unwrap_or_default())
            .unwrap_or_default();
        well_formed(&xmp);
        let xmp = String::from_utf8(xmp).unwrap_or_default();
        assert!(xmp.contains("<pdfaid:part>2</pdfaid:part>"), "{xmp}");
        assert!(xmp.contains("<pdfaid:conformance>B</pdfaid:conformance>"));
        assert!(xmp.contains("<dc:creator><rdf:Seq><rdf:li>Jürgen Müller</rdf:li>"));
        assert!(xmp.contains(&format!("<pdf:Producer>{PRODUCER}</pdf:Producer>")));

        // The information dictionary says the same as the XMP.
        let info = &json_object(&json, trailer["/Info"].as_str().unwrap_or_default())["value"];
        assert_eq!(info["/Title"], "u:Posteingang 42 – Bauamt");
        assert_eq!(info["/Author"], "u:Jürgen Müller");
        assert_eq!(info["/Producer"], format!("u:{PRODUCER}"));
        assert_eq!(info["/Creator"], "u:poststelle");
        assert_eq!(info["/CreationDate"], "u:D:20240506070809+00'00'");
        assert_eq!(info["/ModDate"], "u:D:20240506070809+00'00'");
        assert!(info.get("/Trapped").is_none());

        let ids = trailer["/ID"].as_array().cloned().unwrap_or_default();
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[0], ids[1]);
        assert_eq!(
            ids[0].as_str().map(str::len),
            Some(2 + 32),
            "b: and 16 bytes in hex"
        );

        // The image no longer asks for interpolation.
        let page = &json["pages"][0]["object"];
        let page = &json_object(&json, page.as_str().unwrap_or_default())["value"];
        let image = page["/Resources"]["/XObject"]["/Im0"]
            .as_str()
            .unwrap_or_default();
        assert_eq!(
            json_object(&json, image)["stream"]["dict"]["/Interpolate"],
            false
        );
    }

    #[test]
    fn a_pdfa_read_back_is_updated_in_place() {
        let mut doc = image_page_document();
        apply(&mut doc, Some("Erst"), when()).unwrap_or_else(|e| panic!("{e}"));
        let bytes = save(&mut doc);
        let mut doc = Document::load_mem(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(obstacles(&doc), Vec::<String>::new());
        let objects = doc.objects.len();
        let first_id = doc.trailer.get(b"ID").cloned().ok();
        let later = when() + chrono::Duration::hours(1);
        apply(&mut doc, None, later).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            doc.objects.len(),
            objects,
            "metadata, info and intent reused"
        );
        let ids = doc
            .trailer
            .get(b"ID")
            .and_then(Object::as_array)
            .cloned()
            .unwrap_or_default();
        let first_id = first_id
            .and_then(|i| i.as_array().ok().cloned())
            .unwrap_or_default();
        assert_eq!(ids.first(), first_id.first(), "the permanent part stays");
        assert_ne!(ids.get(1), first_id.get(1), "the changing part changes");
        let bytes = save(&mut doc);
        let raw = String::from_utf8_lossy(&bytes);
        assert!(
            raw.contains("<rdf:li xml:lang=\"x-default\">Erst</rdf:li>"),
            "title kept"
        );
        assert!(raw.contains("2024-05-06T08:08:09+00:00"));
        assert!(raw.contains("D:20240506080809+00'00'"));
    }

    #[test]
    fn javascript_and_encryption_are_obstacles() {
        let mut doc = image_page_document();
        let script = doc.add_object(dictionary! {
            "S" => "JavaScript",
            "JS" => Object::string_literal("app.alert(1)"),
        });
        let names = doc.add_object(dictionary! {
            "JavaScript" => dictionary! {
                "Names" => vec![Object::string_literal("x"), script.into()],
            },
        });
        let catalog = doc.catalog_mut().unwrap_or_else(|e| panic!("{e}"));
        catalog.set("Names", names);
        let found = obstacles(&doc);
        assert!(
            found.iter().any(|o| o.contains("/Names /JavaScript")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|o| o.starts_with("JavaScript")),
            "{found:?}"
        );

        let mut doc = image_page_document();
        let encrypt = doc.add_object(dictionary! { "Filter" => "Standard", "V" => 2 });
        doc.trailer.set("Encrypt", encrypt);
        let found = obstacles(&doc);
        assert!(found.iter().any(|o| o == "encrypted"), "{found:?}");
        assert!(apply(&mut doc, None, when()).is_err());
    }

    #[test]
    fn other_obstacles() {
        // Obstacles look at every object, referenced or not.
        let mut doc2 = image_page_document();
        doc2.add_object(Stream::new(
            dictionary! { "Subtype" => "Image", "ColorSpace" => "DeviceCMYK" },
            vec![],
        ));
        doc2.add_object(Stream::new(dictionary! { "Filter" => "LZWDecode" }, vec![]));
        doc2.add_object(Stream::new(
            dictionary! { "Subtype" => "Form" },
            b"(a string with k) Tj 0 0 0 1 k".to_vec(),
        ));
        doc2.add_object(dictionary! {
            "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
        });
        doc2.add_object(Object::Array(vec![
            "Separation".into(),
            "Spot".into(),
            "DeviceRGB".into(),
            Object::Null,
        ]));
        let found = obstacles(&doc2);
        for want in [
            "DeviceCMYK colour (object",
            "LZWDecode filter",
            "DeviceCMYK colour (k/K operator)",
            "font Helvetica not embedded",
            "DeviceN or Separation colour",
        ] {
            assert!(
                found.iter().any(|o| o.starts_with(want)),
                "{want}: {found:?}"
            );
        }
    }

    #[test]
    fn content_tokens_skip_strings_comments_and_inline_data() {
        let mut f = Findings::default();
        scan_content(
            &mut f,
            (1, 0),
            b"% 0 0 0 1 k\n(k \\) k) Tj <6b> Tj /k Do BI /W 1 /H 1 /CS /G /BPC 8 ID k k EI 1 g",
        );
        assert!(f.list.is_empty(), "{:?}", f.list);
        scan_content(
            &mut f,
            (1, 0),
            b"BI /CS /CMYK /F /LZW /I true ID \0\0\0\0 EI /DeviceCMYK cs",
        );
        let found = f.into_strings();
        assert_eq!(found.len(), 4, "{found:?}");
        let mut f = Findings::default();
        scan_content(&mut f, (1, 0), b"/Device#43MYK CS 1 0 0 0 K");
        assert_eq!(f.list.len(), 2, "{:?}", f.list);
    }

    #[test]
    fn foreign_output_intents_are_obstacles() {
        let mut doc = image_page_document();
        let profile = doc.add_object(Stream::new(dictionary! { "N" => 4 }, vec![0; 16]));
        let intent = doc.add_object(dictionary! {
            "Type" => "OutputIntent", "S" => "GTS_PDFX", "DestOutputProfile" => profile,
        });
        let catalog = doc.catalog_mut().unwrap_or_else(|e| panic!("{e}"));
        catalog.set("OutputIntents", vec![Object::Reference(intent)]);
        let found = obstacles(&doc);
        assert!(found.iter().any(|o| o.contains("GTS_PDFX")), "{found:?}");
        assert!(apply(&mut doc, None, when()).is_err());
    }

    #[test]
    fn links_are_fixed_other_annotations_are_obstacles() {
        let mut doc = image_page_document();
        let link = doc.add_object(dictionary! {
            "Type" => "Annot",
            "Subtype" => "Link",
            "Rect" => vec![0.into(), 0.into(), 10.into(), 10.into()],
        });
        let page = doc.page_iter().next().unwrap_or((0, 0));
        let set_annots = |doc: &mut Document, annots: Vec<Object>| {
            if let Ok(p) = doc.get_dictionary_mut(page) {
                p.set("Annots", annots);
            }
        };
        set_annots(&mut doc, vec![link.into()]);
        assert_eq!(obstacles(&doc), Vec::<String>::new());
        apply(&mut doc, None, when()).unwrap_or_else(|e| panic!("{e}"));
        let flags = doc
            .get_dictionary(link)
            .and_then(|a| a.get(b"F"))
            .and_then(Object::as_i64);
        assert_eq!(flags.ok(), Some(4));

        let note = doc.add_object(dictionary! {
            "Subtype" => "Text",
            "F" => 4,
            "Rect" => vec![0.into(), 0.into(), 10.into(), 10.into()],
        });
        let movie = doc.add_object(dictionary! { "Subtype" => "Movie" });
        set_annots(&mut doc, vec![link.into(), note.into(), movie.into()]);
        let found = obstacles(&doc);
        assert!(
            found
                .iter()
                .any(|o| o.starts_with("annotation without an appearance stream")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|o| o.starts_with("annotation of type /Movie")),
            "{found:?}"
        );
        assert_eq!(found.len(), 2, "{found:?}");
    }

    #[test]
    fn absurd_predictors_are_not_decoded() {
        let mut doc = image_page_document();
        doc.add_object(Stream::new(
            dictionary! {
                "Subtype" => "Form",
                "Filter" => "FlateDecode",
                "DecodeParms" => dictionary! {
                    "Predictor" => 10, "Colors" => 536_870_913, "Columns" => 1,
                },
            },
            vec![0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01],
        ));
        let started = std::time::Instant::now();
        let found = obstacles(&doc);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        assert!(
            found
                .iter()
                .any(|o| o.starts_with("unreadable content stream")),
            "{found:?}"
        );
    }

    #[test]
    fn objects_used_elsewhere_are_not_overwritten() {
        let mut doc = image_page_document();
        let root = doc
            .trailer
            .get(b"Root")
            .and_then(Object::as_reference)
            .unwrap_or((0, 0));
        let content = doc.get_page_contents(doc.page_iter().next().unwrap_or((0, 0)));
        let content = content.first().copied().unwrap_or((0, 0));
        // A hostile file: its "information dictionary" is the catalog, its "metadata" a page's
        // content stream.
        doc.trailer.set("Info", root);
        if let Ok(catalog) = doc.catalog_mut() {
            catalog.set("Metadata", content);
        }
        apply(&mut doc, Some("T"), when()).unwrap_or_else(|e| panic!("{e}"));
        let catalog = doc.get_dictionary(root).unwrap_or_else(|e| panic!("{e}"));
        assert!(catalog.has_type(b"Catalog"));
        assert_ne!(
            catalog.get(b"Metadata").ok(),
            Some(&Object::Reference(content))
        );
        let info = doc.trailer.get(b"Info").and_then(Object::as_reference).ok();
        assert!(info.is_some_and(|i| i != root));
        let content = doc.get_object(content).and_then(Object::as_stream);
        assert!(content.is_ok_and(|s| !s.dict.has_type(b"Metadata")));
    }

    #[test]
    fn versions() {
        assert!(!version_above_1_7("1.4"));
        assert!(!version_above_1_7("1.7"));
        assert!(version_above_1_7("2.0"));
        assert!(version_above_1_7("x"));
    }
}
