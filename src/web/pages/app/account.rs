//! The cabinet's account settings: linking Telegram to a web-only account (a code the bot
//! takes, [`subscribers::new_link_code`]), the language, and turning auto-renewal off. Each
//! calls the code the bot's settings call.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::AppLayout;
use super::session::Subscriber;
use crate::db::{subscriptions, users};
use crate::domain::Language;
use crate::error::{AppError, AppResult};
use crate::subscribers;
use crate::web::WebState;
use crate::web::pages::session::{CsrfForm, EmptyForm};
use crate::web::pages::{render, see_other};

#[derive(Template)]
#[template(path = "app/telegram.html")]
struct TelegramLinkPage {
    layout: AppLayout,
    code: String,
    /// `https://t.me/<bot>?start=link_<code>`, once the bot's name is known.
    bot_link: Option<String>,
    minutes: i64,
}

/// `POST /app/telegram`: a new code that links a Telegram account to this web-only account,
/// with the button that opens the bot with it. An account that has Telegram goes home.
pub async fn link_code(
    subscriber: Subscriber,
    state: web::Data<WebState>,
    req: HttpRequest,
    _form: CsrfForm<EmptyForm>,
) -> AppResult<HttpResponse> {
    if subscriber.user.telegram_id.is_some() {
        return Ok(see_other("/app/"));
    }
    if state.settings.telegram.is_none() {
        return Err(AppError::NotFound(
            "linking Telegram (this shop has no Telegram bot)".into(),
        ));
    }
    let code = {
        let mut conn = state.pool.get().await?;
        subscribers::new_link_code(&mut conn, subscriber.user.id).await?
    };
    tracing::info!(user = %subscriber.user.id, "Telegram link code shown");
    let bot_link = state
        .bot_username()
        .map(|bot| subscribers::bot_start_link(bot, &format!("link_{code}")));
    let page = TelegramLinkPage {
        layout: AppLayout::for_request(&req, Some(&subscriber)),
        code,
        bot_link,
        minutes: subscribers::LINK_CODE_LIFETIME.num_minutes(),
    };
    render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct LanguageForm {
    #[serde(default)]
    language: String,
}

/// `POST /app/settings/language`: the subscriber's language, for the cabinet, the bot and the
/// notifications alike.
pub async fn language(
    subscriber: Subscriber,
    state: web::Data<WebState>,
    form: CsrfForm<LanguageForm>,
) -> AppResult<HttpResponse> {
    let language: Language = form
        .0
        .language
        .parse()
        .map_err(|_| AppError::validation("language", "must be ru or en"))?;
    {
        let mut conn = state.pool.get().await?;
        users::set_language(&mut conn, subscriber.user.id, language).await?;
    }
    tracing::info!(user = %subscriber.user.id, language = language.as_str(), "language changed in the cabinet");
    Ok(see_other("/app/#account"))
}

/// `POST /app/settings/auto-renew-off`: no more automatic renewals (the saved card or Star
/// subscription is forgotten), as the bot's settings button does.
pub async fn auto_renew_off(
    subscriber: Subscriber,
    state: web::Data<WebState>,
    _form: CsrfForm<EmptyForm>,
) -> AppResult<HttpResponse> {
    {
        let mut conn = state.pool.get().await?;
        subscriptions::set_auto_renew(&mut conn, subscriber.user.id, None).await?;
    }
    tracing::info!(user = %subscriber.user.id, "auto-renewal turned off in the cabinet");
    Ok(see_other("/app/?done=auto-renew-off#account"))
}
