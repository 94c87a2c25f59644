//! The subscriber cabinet under `/app/`, in any browser (email sign-in) and as a Telegram Mini
//! App (signed `initData`): the subscription's state and link with its QR code and one-tap
//! import into the common apps, payment history, referral link, the trial. Every action calls
//! the code the bot calls (`crate::subscribers`, the payment processor); no rule lives here.

mod account;
mod buy;
mod home;
pub mod session;
mod signin;

use actix_web::{HttpRequest, web};

use crate::error::AppError;
use crate::i18n::pages::Tr;
use crate::web::WebState;

/// Where a browser without a session is sent.
pub const SIGN_IN_PATH: &str = "/app/signin";

/// The Content-Security-Policy of the cabinet: the console's, except that Telegram's web
/// client may frame it (a Mini App runs in an iframe there).
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       form-action 'self'; frame-ancestors https://web.telegram.org; base-uri 'none'; \
                       object-src 'none'";

/// The routes of the cabinet.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/app").get(|| async { super::see_other("/app/") }))
        .service(
            web::scope("/app")
                .wrap(actix_web::middleware::from_fn(session::load))
                .wrap(actix_web::middleware::from_fn(super::page_guard))
                .service(
                    web::resource("/signin")
                        .get(signin::show)
                        .post(signin::request_link),
                )
                .service(web::resource("/signin/link").post(signin::use_link))
                .service(web::resource("/signin/telegram").post(signin::telegram))
                .service(web::resource("/signin/{token}").get(signin::show_link))
                .service(web::resource("/signout").post(signin::sign_out))
                .service(web::resource("/").get(home::show))
                .service(web::resource("/trial").post(home::trial))
                .service(web::resource("/buy").get(buy::show).post(buy::submit))
                .service(web::resource("/payments/{id}").get(buy::payment))
                .service(web::resource("/telegram").post(account::link_code))
                .service(web::resource("/settings/language").post(account::language))
                .service(web::resource("/settings/email").post(signin::change_email))
                .service(web::resource("/settings/auto-renew-off").post(account::auto_renew_off))
                .default_service(web::to(|| async {
                    Err::<actix_web::HttpResponse, _>(AppError::not_found("page"))
                })),
        );
}

/// What the cabinet's layout needs: the reader's texts, the stylesheet and script, and for a
/// signed-in subscriber the CSRF token of the header's sign-out form.
pub struct AppLayout {
    pub tr: Tr,
    /// The console's stylesheet (shared look) and the cabinet's own.
    pub css: String,
    pub app_css: String,
    pub js: String,
    pub csrf: Option<String>,
}

impl AppLayout {
    /// The layout of a request: the subscriber's language when signed in, the browser's before.
    pub fn for_request(req: &HttpRequest, session: Option<&session::SubscriberSession>) -> Self {
        let offset = req
            .app_data::<web::Data<WebState>>()
            .map(|s| s.settings.notifications.display_offset)
            .unwrap_or_else(|| chrono::Offset::fix(&chrono::Utc));
        let language =
            session.map_or_else(|| super::admin::browser_language(req), |s| s.user.language);
        AppLayout {
            tr: Tr::new(language, offset),
            css: super::assets::stylesheet_href(),
            app_css: super::assets::cabinet_stylesheet_href(),
            js: super::assets::cabinet_script_href(),
            csrf: session.map(|s| s.csrf.clone()),
        }
    }
}
