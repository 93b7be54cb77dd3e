//! The printable separator sheet (`poststelle trennblatt`): one A4 page with a patch-T code,
//! a Code 128 and a QR code of the configured value, and a German note how to use it. Drawn as
//! filled rectangles (no fonts but the PDF's standard Helvetica, no images), so it prints
//! sharp at any resolution.

use rxing::{BarcodeFormat, Writer};

/// Errors making the sheet.
#[derive(Debug, thiserror::Error)]
pub enum SheetError {
    /// The value cannot be encoded.
    #[error("cannot encode {0:?} as a barcode: {1}")]
    Encode(String, String),
}

const MM: f32 = 72.0 / 25.4;
const PAGE_H: f32 = 297.0;

/// A filled rectangle at `x`, `y` (mm from the top-left corner), `w` × `h` mm.
fn rect(out: &mut String, x: f32, y: f32, w: f32, h: f32) {
    out.push_str(&format!(
        "{:.2} {:.2} {:.2} {:.2} re f\n",
        x * MM,
        (PAGE_H - y - h) * MM,
        w * MM,
        h * MM
    ));
}

fn text(out: &mut String, x: f32, y: f32, size: f32, s: &str) {
    // WinAnsi: the German letters are in Latin-1.
    let escaped: String = s
        .chars()
        .map(|c| match c {
            '(' | ')' | '\\' => format!("\\{c}"),
            c if (c as u32) < 128 => c.to_string(),
            c if (c as u32) < 256 => format!("\\{:03o}", c as u32),
            _ => "?".into(),
        })
        .collect();
    out.push_str(&format!(
        "BT /F1 {size} Tf {:.2} {:.2} Td ({escaped}) Tj ET\n",
        x * MM,
        (PAGE_H - y - size / MM) * MM
    ));
}

/// Draws a barcode's modules (`module` mm each) with its top-left corner at `x`, `y`.
fn matrix(
    out: &mut String,
    m: &rxing::common::BitMatrix,
    x: f32,
    y: f32,
    module: f32,
    height: Option<f32>,
) {
    let rows = if height.is_some() { 1 } else { m.getHeight() };
    for r in 0..rows {
        let mut c = 0;
        while c < m.getWidth() {
            if m.get(c, r) {
                let start = c;
                while c < m.getWidth() && m.get(c, r) {
                    c += 1;
                }
                let h = height.unwrap_or(module);
                rect(
                    out,
                    x + start as f32 * module,
                    y + r as f32 * module,
                    (c - start) as f32 * module,
                    h,
                );
            } else {
                c += 1;
            }
        }
    }
}

/// The separator sheet for barcode `value` as PDF bytes.
pub fn separator_sheet(value: &str) -> Result<Vec<u8>, SheetError> {
    let writer = rxing::MultiFormatWriter;
    let encode = |f: BarcodeFormat| {
        writer
            .encode(value, &f, 0, 0)
            .map_err(|e| SheetError::Encode(value.to_string(), e.to_string()))
    };
    let code128 = encode(BarcodeFormat::CODE_128)?;
    let qr = encode(BarcodeFormat::QR_CODE)?;
    let mut c = String::new();
    text(&mut c, 25.0, 20.0, 28.0, "TRENNBLATT");
    text(
        &mut c,
        25.0,
        35.0,
        11.0,
        "Vor jeden Brief eines Stapels legen; das Blatt wird nicht zugestellt.",
    );
    text(
        &mut c,
        25.0,
        41.0,
        11.0,
        "In Originalgröße drucken, nicht kopieren, nicht knicken.",
    );
    // Patch T: narrow, wide, narrow, wide (2.03 / 5.08 mm), narrow spaces, 63.5 mm long.
    let mut x = 25.0;
    for wide in [false, true, false, true] {
        let w = if wide { 5.08 } else { 2.03 };
        rect(&mut c, x, 60.0, w, 63.5);
        x += w + 2.03;
    }
    text(&mut c, 25.0, 127.0, 9.0, "Patch T");
    // Code 128, 0.4 mm modules, 20 mm high.
    matrix(&mut c, &code128, 70.0, 60.0, 0.4, Some(20.0));
    text(&mut c, 70.0, 83.0, 9.0, &format!("Code 128: {value}"));
    // QR, 1 mm modules.
    matrix(&mut c, &qr, 70.0, 95.0, 1.0, None);
    text(&mut c, 70.0, 97.0 + qr.getHeight() as f32, 9.0, "QR-Code");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595.28 841.89] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>".to_string(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_string(),
        format!("<< /Length {} >>\nstream\n{c}endstream", c.len()),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sheet_is_a_one_page_pdf_with_its_codes() {
        let pdf = separator_sheet("POSTSTELLE-TRENNBLATT").expect("sheet");
        let doc = lopdf::Document::load_mem(&pdf).expect("pdf");
        assert_eq!(doc.get_pages().len(), 1);
        let text = String::from_utf8_lossy(&pdf);
        assert!(text.contains("TRENNBLATT") && text.contains("re f"));
    }
}
