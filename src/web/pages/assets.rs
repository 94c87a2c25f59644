//! Static assets of the pages, embedded in the binary and served under a name that carries a
//! hash of their content (`/assets/console.3f2a9c1b.css`), so browsers may keep them for a
//! year: a new build with a changed file has a new name.

use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use sha2::{Digest, Sha256};

use crate::error::{AppError, AppResult};

/// One embedded file.
struct Asset {
    /// The served name, with the content hash.
    name: String,
    content_type: &'static str,
    body: &'static [u8],
}

impl Asset {
    fn new(stem: &str, ext: &str, content_type: &'static str, body: &'static [u8]) -> Asset {
        let digest = Sha256::digest(body);
        let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        Asset {
            name: format!("{stem}.{hash}.{ext}"),
            content_type,
            body,
        }
    }
}

static CONSOLE_CSS: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "console",
        "css",
        "text/css; charset=utf-8",
        include_bytes!("../../../assets/console.css"),
    )
});

/// The console's one script (progress polling, live preview): written for the console, no
/// library; the pages work without it.
static CONSOLE_JS: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "console",
        "js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/console.js"),
    )
});

/// The cabinet's own styles, on top of the console's stylesheet (same colours, type, cards).
static CABINET_CSS: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "cabinet",
        "css",
        "text/css; charset=utf-8",
        include_bytes!("../../../assets/cabinet.css"),
    )
});

/// The cabinet's script: the Mini App's sign-in (Telegram's `initData` from the page's
/// fragment), Telegram's theme colours, and the copy buttons. No library; without it the
/// cabinet still works in a browser.
static CABINET_JS: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "cabinet",
        "js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/cabinet.js"),
    )
});

/// The path of the cabinet's stylesheet.
pub fn cabinet_stylesheet_href() -> String {
    format!("/assets/{}", CABINET_CSS.name)
}

/// The path of the cabinet's script.
pub fn cabinet_script_href() -> String {
    format!("/assets/{}", CABINET_JS.name)
}

/// The path of the script, for `<script src>`.
pub fn script_href() -> String {
    format!("/assets/{}", CONSOLE_JS.name)
}

/// The path of the stylesheet, for `<link href>`.
pub fn stylesheet_href() -> String {
    format!("/assets/{}", CONSOLE_CSS.name)
}

/// `GET /assets/{name}`: an embedded file by its hashed name, cacheable for a year.
pub async fn serve(name: web::Path<String>) -> AppResult<HttpResponse> {
    let asset = [&*CONSOLE_CSS, &*CONSOLE_JS, &*CABINET_CSS, &*CABINET_JS]
        .into_iter()
        .find(|a| a.name == *name)
        .ok_or_else(|| AppError::not_found(format!("asset {name}")))?;
    Ok(HttpResponse::Ok()
        .content_type(asset.content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(asset.body))
}
