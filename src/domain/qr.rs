//! The QR code of a subscription link (client apps scan it): a PNG for the bot's `sendPhoto`,
//! an SVG for the cabinet's page.

use std::fmt::Write as _;

use qrcode::{Color, EcLevel, QrCode};

/// Pixels per QR module and the quiet zone around the code (in modules).
const SCALE: usize = 8;
const QUIET: usize = 4;

/// The modules of `text`'s QR code: the side and the colours row by row. `None` when the text
/// is too long for a QR code.
fn modules(text: &str) -> Option<(usize, Vec<Color>)> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).ok()?;
    Some((code.width(), code.to_colors()))
}

/// A black-on-white SVG of `text`'s QR code, one unit per module with the quiet zone, drawn as
/// one path (the page scales it). `None` when the text is too long for a QR code.
pub fn svg(text: &str) -> Option<String> {
    let (modules, colors) = modules(text)?;
    let side = modules + 2 * QUIET;
    let mut path = String::new();
    for (i, color) in colors.iter().enumerate() {
        if *color == Color::Dark {
            let (x, y) = (i % modules + QUIET, i / modules + QUIET);
            // Writing to a String cannot fail.
            let _ = write!(path, "M{x} {y}h1v1h-1z");
        }
    }
    Some(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {side} {side}\" \
         shape-rendering=\"crispEdges\"><rect width=\"{side}\" height=\"{side}\" fill=\"#fff\"/>\
         <path fill=\"#000\" d=\"{path}\"/></svg>"
    ))
}

/// A black-on-white PNG of `text`'s QR code. `None` when the text is too long for a QR code.
pub fn png(text: &str) -> Option<Vec<u8>> {
    let (modules, colors) = modules(text)?;
    let side = (modules + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let (x, y) = ((i % modules + QUIET) * SCALE, (i / modules + QUIET) * SCALE);
        for row in pixels[y * side..(y + SCALE) * side].chunks_mut(side) {
            row[x..x + SCALE].fill(0);
        }
    }
    let side = u32::try_from(side).ok()?;
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().ok()?;
        writer.write_image_data(&pixels).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_becomes_a_decodable_png() {
        let png = png("https://panel.example.com/sub/dXNlcl8xMjM0NTY3ODk=").unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let decoder = ::png::Decoder::new(std::io::Cursor::new(png));
        let mut reader = decoder.read_info().unwrap();
        let info = reader.info();
        assert_eq!(info.width, info.height);
        // Version 4 at least for a link this long: (33 + 8) modules of 8 pixels.
        assert!(info.width >= (33 + 8) * 8);
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        reader.next_frame(&mut buf).unwrap();
        // Both colours present, the quiet zone white.
        assert!(buf.contains(&0) && buf.contains(&255));
        assert_eq!(buf[0], 255);
    }

    #[test]
    fn too_long_for_a_qr_code() {
        assert!(png(&"x".repeat(5000)).is_none());
        assert!(svg(&"x".repeat(5000)).is_none());
    }

    #[test]
    fn the_svg_draws_the_same_modules_as_the_png() {
        let link = "https://panel.example.com/sub/dXNlcl8xMjM0NTY3ODk=";
        let svg = svg(link).unwrap();
        let (modules, colors) = modules(link).unwrap();
        let side = modules + 2 * QUIET;
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains(&format!("viewBox=\"0 0 {side} {side}\"")));
        let dark = colors.iter().filter(|c| **c == Color::Dark).count();
        assert_eq!(svg.matches("h1v1h-1z").count(), dark);
        // The top-left finder pattern's corner module, after the quiet zone.
        assert!(svg.contains(&format!("M{QUIET} {QUIET}h1v1h-1z")));
        // Only what we wrote: no text of the link inside.
        assert!(!svg.contains("panel.example.com"));
    }
}
