//! What an upload is: its name as kept, its type from its bytes, and for a
//! picture its size, a thumbnail and its bytes without EXIF metadata.

use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use crate::domain::{AppError, AppResult};

/// Longest file name kept (bytes); longer ones are cut at a character.
const MAX_NAME_BYTES: usize = 255;
/// Thumbnails fit in this many pixels square.
const THUMBNAIL_PX: u32 = 320;
/// Pictures larger than this (either side) are stored but not previewed.
const MAX_DECODE_PX: u32 = 16_384;

/// The name as kept: the last path segment, control characters dropped,
/// cut to [`MAX_NAME_BYTES`]. Empty (or only dots) is refused.
pub fn clean_name(raw: &str) -> AppResult<String> {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut name: String = last.chars().filter(|c| !c.is_control()).collect();
    name = name.trim().to_owned();
    if name.len() > MAX_NAME_BYTES {
        let mut end = MAX_NAME_BYTES;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
    if name.is_empty() || name.chars().all(|c| c == '.') {
        return Err(AppError::invalid("name", "a file name is required"));
    }
    Ok(name)
}

/// The type, from the bytes.
pub fn sniff(head: &[u8]) -> &'static str {
    // infer's own text matchers (HTML, XML, scripts) are left to the text
    // rules below, which also tell SVG.
    if let Some(kind) = infer::get(head).filter(|k| k.matcher_type() != infer::MatcherType::Text) {
        return kind.mime_type();
    }
    let text = match std::str::from_utf8(head) {
        Ok(t) => Some(t),
        // Cut in the middle of a character at the end of the sample.
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).ok(),
        Err(_) => None,
    };
    match text {
        Some(t) if !t.contains('\0') => {
            let lower = t
                .trim_start_matches('\u{feff}')
                .trim_start()
                .to_ascii_lowercase();
            if lower.contains("<svg") {
                "image/svg+xml"
            } else if lower.starts_with("<!doctype html") || lower.starts_with("<html") {
                "text/html"
            } else {
                "text/plain"
            }
        }
        _ => "application/octet-stream",
    }
}

/// What [`examine_picture`] found.
pub(super) struct Picture {
    pub width: i32,
    pub height: i32,
    pub thumbnail: Option<Bytes>,
    /// The file was rewritten without its metadata: its new size and digest.
    pub rewritten: Option<(u64, String)>,
}

/// Measures a picture, strips its EXIF metadata (rewriting the file; a
/// rotation the metadata asked for is applied to the pixels first, so the
/// picture still stands the right way up) and makes a thumbnail. None:
/// not a picture the decoders can read.
pub(super) fn examine_picture(path: &std::path::Path) -> Option<Picture> {
    use image::{ImageDecoder as _, ImageReader, metadata::Orientation};

    let bytes = std::fs::read(path).ok()?;
    let reader = || {
        ImageReader::new(std::io::Cursor::new(&bytes[..]))
            .with_guessed_format()
            .ok()
    };
    let (w, h) = reader()?.into_dimensions().ok()?;
    if w == 0 || h == 0 {
        return None;
    }
    let format = reader()?.format()?;
    let mut picture = Picture {
        width: i32::try_from(w).ok()?,
        height: i32::try_from(h).ok()?,
        thumbnail: None,
        rewritten: None,
    };
    let decoded = if w <= MAX_DECODE_PX && h <= MAX_DECODE_PX {
        let mut decoder = reader()?.into_decoder().ok()?;
        let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
        image::DynamicImage::from_decoder(decoder)
            .ok()
            .map(|img| (img, orientation))
    } else {
        None
    };

    // Metadata out: what is served carries no EXIF (so no location).
    let stripped = match img_parts::DynImage::from_bytes(Bytes::from(bytes.clone())) {
        Ok(Some(mut parts)) => {
            use img_parts::ImageEXIF as _;
            parts.exif().map(|_| {
                parts.set_exif(None);
                parts.encoder().bytes()
            })
        }
        _ => None,
    };
    let mut rewritten: Option<Vec<u8>> = stripped.map(|b| b.to_vec());
    if let Some((img, orientation)) = &decoded
        && *orientation != Orientation::NoTransforms
        && format == image::ImageFormat::Jpeg
    {
        // The metadata that said how to turn it is gone: turn the pixels.
        let mut turned = img.clone();
        turned.apply_orientation(*orientation);
        let mut out = Vec::new();
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92);
        if turned.to_rgb8().write_with_encoder(encoder).is_ok() {
            picture.width = i32::try_from(turned.width()).ok()?;
            picture.height = i32::try_from(turned.height()).ok()?;
            rewritten = Some(out);
        }
    }
    if let Some(new) = rewritten {
        std::fs::write(path, &new).ok()?;
        let digest = hex::encode(&Sha256::digest(&new)[..16]);
        picture.rewritten = Some((new.len() as u64, digest));
    }

    if let Some((mut img, orientation)) = decoded {
        img.apply_orientation(orientation);
        let small = img.thumbnail(THUMBNAIL_PX, THUMBNAIL_PX);
        let mut out = std::io::Cursor::new(Vec::new());
        let made =
            if small.color().has_alpha() {
                small.write_to(&mut out, image::ImageFormat::Png)
            } else {
                small.to_rgb8().write_with_encoder(
                    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80),
                )
            };
        if made.is_ok() {
            picture.thumbnail = Some(Bytes::from(out.into_inner()));
        }
    }
    Some(picture)
}

#[cfg(test)]
mod tests {
    use super::super::is_safe_image;
    use super::*;

    #[test]
    fn names_lose_directories_and_control_characters() {
        assert_eq!(clean_name("../../etc/passwd").unwrap(), "passwd");
        assert_eq!(
            clean_name("C:\\Users\\a\\report.pdf").unwrap(),
            "report.pdf"
        );
        assert_eq!(clean_name("a\u{0}b\nc.txt").unwrap(), "abc.txt");
        assert!(clean_name("").is_err());
        assert!(clean_name("..").is_err());
        assert!(clean_name("dir/").is_err());
        let long = "é".repeat(200);
        let kept = clean_name(&long).unwrap();
        assert!(kept.len() <= MAX_NAME_BYTES && kept.chars().all(|c| c == 'é'));
    }

    #[test]
    fn types_come_from_the_bytes() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "image/png");
        assert_eq!(sniff(b"%PDF-1.7\n"), "application/pdf");
        assert_eq!(sniff(b"hello there"), "text/plain");
        assert_eq!(
            sniff(b"<!DOCTYPE html><script>alert(1)</script>"),
            "text/html"
        );
        assert_eq!(
            sniff(b"<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"/>"),
            "image/svg+xml"
        );
        assert_eq!(
            sniff(&[0xff, 0xfe, 0x00, 0x01, 0x80]),
            "application/octet-stream"
        );
        // Cut inside a character at the end of the sample: still text.
        let mut head = "a".repeat(10).into_bytes();
        head.extend_from_slice(&"é".as_bytes()[..1]);
        assert_eq!(sniff(&head), "text/plain");
    }

    #[test]
    fn only_raster_images_are_safe_inline() {
        assert!(is_safe_image("image/png"));
        assert!(!is_safe_image("image/svg+xml"));
        assert!(!is_safe_image("text/html"));
    }
}
