//! Signing in to the cabinet. By email: an address gets a one-time link (15 minutes, single
//! use, only its SHA-256 stored) and every address gets the same answer — an unknown one signs
//! up as a web-only subscriber, so there is nothing to enumerate. The link opens a page with a
//! button (mail scanners that fetch links do not use it up); the button's POST signs in. As a
//! Telegram Mini App: the page posts Telegram's signed `initData`
//! ([`crate::domain::init_data`]) and the Telegram user gets a session, registered as the bot's
//! `/start` registers them. Both forms carry a double-submit token (no session yet), so another
//! site cannot sign a browser in to its own account.

use std::time::Duration;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::Utc;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{AppLayout, session};
use crate::db::users::{self, TelegramProfile};
use crate::db::{email_logins, rate};
use crate::domain::email::normalize_email;
use crate::domain::init_data::{self, InitDataError};
use crate::domain::{Language, UserId};
use crate::error::{AppError, AppResult};
use crate::web::WebState;
use crate::web::pages::session::{
    CsrfForm, EmptyForm, SameSite, hash_token, random_token, set_cookie_with, sign_in_token,
    sign_in_token_matches,
};
use crate::web::pages::{render, see_other};

/// How long a sign-in link works.
pub const LINK_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// The sign-in forms' double-submit cookie.
const SIGN_IN_COOKIE: &str = "vpnshop_signin";
/// Sign-in mails per address: one per 5 minutes, after a burst of 3.
const PER_ADDRESS: (Duration, Duration) = (Duration::from_secs(300), Duration::from_secs(600));
/// Sign-in mails per client address: one per 20 s, after a burst of 16.
const PER_CLIENT: (Duration, Duration) = (Duration::from_secs(20), Duration::from_secs(300));

#[derive(Template)]
#[template(path = "app/signin.html")]
struct SignInPage {
    layout: AppLayout,
    csrf: String,
    email: String,
    /// The shop sends no mail (no SMTP_URL): only the Mini App signs in.
    email_off: bool,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "app/mail_sent.html")]
struct MailSentPage {
    layout: AppLayout,
    email: String,
}

#[derive(Template)]
#[template(path = "app/link.html")]
struct LinkPage {
    layout: AppLayout,
    csrf: String,
    token: String,
    usable: bool,
    /// A link that confirms this address as an account's new one (not a sign-in link).
    confirm: Option<String>,
}

#[derive(Template)]
#[template(path = "app/email_confirmed.html")]
struct EmailConfirmedPage {
    layout: AppLayout,
    email: String,
    /// Another account signs in with this address: nothing changed.
    taken: bool,
}

/// A page with the sign-in forms' token set as their cookie.
fn with_sign_in_cookie(
    state: &WebState,
    mut response: HttpResponse,
    token: &str,
) -> AppResult<HttpResponse> {
    let cookie = set_cookie_with(
        state,
        SIGN_IN_COOKIE,
        token,
        Some(Duration::from_secs(3600)),
        SameSite::Strict,
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        header::HeaderValue::from_str(&cookie)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("cookie header: {e}")))?,
    );
    Ok(response)
}

fn sign_in_page(
    state: &WebState,
    req: &HttpRequest,
    status: StatusCode,
    email: String,
    error: Option<String>,
) -> AppResult<HttpResponse> {
    let csrf = sign_in_token(state, req, SIGN_IN_COOKIE);
    let page = SignInPage {
        layout: AppLayout::for_request(req, None),
        csrf: csrf.clone(),
        email,
        email_off: state.mailer.is_none(),
        error,
    };
    with_sign_in_cookie(state, render(status, &page)?, &csrf)
}

/// `GET /app/signin`: the email form (and, inside Telegram, the Mini App's automatic sign-in);
/// a browser with a session goes to the cabinet.
pub async fn show(state: web::Data<WebState>, req: HttpRequest) -> AppResult<HttpResponse> {
    if session::current(&req).is_some() {
        return Ok(see_other("/app/"));
    }
    sign_in_page(&state, &req, StatusCode::OK, String::new(), None)
}

#[derive(Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
}

/// The key of a rate budget of `what` (an address is hashed: the budget table names no one).
fn budget_key(kind: &str, what: &str) -> String {
    let digest = Sha256::digest(what.as_bytes());
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("app-signin:{kind}:{hex}")
}

/// What asking for a mailed link did.
enum Mailed {
    /// The link is on its way (the answer does not wait on the mail server).
    Sent,
    /// A budget is spent: the next link in about this many minutes.
    TooMany { minutes: i64 },
}

/// Mails `address` a one-time link (15 minutes): a sign-in link, or with `user` a link that
/// confirms the address as that account's. Rate-limited per address and per client, in the
/// database (replicas share the budgets); only the token's SHA-256 is stored.
async fn mail_link(
    state: &WebState,
    req: &HttpRequest,
    mailer: std::sync::Arc<crate::actors::notifier::Mailer>,
    language: Language,
    address: &str,
    user: Option<UserId>,
) -> AppResult<Mailed> {
    let client = crate::web::remote_addr(req).unwrap_or_default();
    let mut conn = state.pool.get().await?;
    for (key, (interval, burst)) in [
        (budget_key("client", &client), PER_CLIENT),
        (budget_key("email", address), PER_ADDRESS),
    ] {
        if let Err(retry_at) = rate::reserve(&mut conn, &key, interval, burst).await? {
            tracing::info!(key, "cabinet mail link refused: rate limit");
            let minutes = (retry_at - Utc::now()).num_minutes().max(0) + 1;
            return Ok(Mailed::TooMany { minutes });
        }
    }
    let token = random_token();
    let lifetime = chrono::Duration::from_std(LINK_LIFETIME).unwrap_or_default();
    email_logins::create(
        &mut conn,
        &hash_token(&token),
        address,
        Utc::now() + lifetime,
        user,
    )
    .await?;
    drop(conn);
    let link = state
        .settings
        .public_base_url
        .join(&format!("app/signin/{token}"))
        .map_err(|e| AppError::Internal(anyhow::anyhow!("mail link: {e}")))?;
    let (subject, text) = match user {
        None => ("app-mail-subject", "app-mail-text"),
        Some(_) => ("app-confirm-mail-subject", "app-confirm-mail-text"),
    };
    let args = crate::i18n::Args::new()
        .text("link", link.as_str())
        .text("email", address);
    let subject = crate::i18n::message(language, subject, &crate::i18n::Args::new());
    let text = crate::i18n::message(language, text, &args);
    let html = crate::i18n::notifications::email_html(
        &subject,
        &crate::i18n::escape_html(&text).replace('\n', "<br>"),
    );
    // The answer does not wait on the mail server (nor tells how it went): the same page at
    // the same speed whatever the address.
    let address = address.to_owned();
    tokio::spawn(async move {
        if let Err(e) = mailer.send(&address, &subject, text, html).await {
            tracing::warn!(error = %e, "the cabinet's mail link was not sent");
        }
    });
    Ok(Mailed::Sent)
}

/// `POST /app/signin`: mails a sign-in link to the address and says so — the same page for an
/// address that has an account and one that has not.
pub async fn request_link(
    state: web::Data<WebState>,
    req: HttpRequest,
    form: web::Form<EmailForm>,
) -> AppResult<HttpResponse> {
    let EmailForm { csrf, email } = form.into_inner();
    if !sign_in_token_matches(&state, &req, SIGN_IN_COOKIE, &csrf) {
        return Err(AppError::Forbidden(
            "the sign-in form's security token is missing or out of date; reload the page".into(),
        ));
    }
    let tr = AppLayout::for_request(&req, None).tr;
    let Some(mailer) = state.mailer.clone() else {
        return Err(AppError::NotFound("email sign-in (no SMTP_URL)".into()));
    };
    let address = match normalize_email(&email) {
        Ok(address) => address.to_lowercase(),
        Err(_) => {
            let error = Some(tr.t("app-signin-bad-email"));
            return sign_in_page(&state, &req, StatusCode::UNPROCESSABLE_ENTITY, email, error);
        }
    };
    if let Mailed::TooMany { minutes } =
        mail_link(&state, &req, mailer, tr.language, &address, None).await?
    {
        let error = Some(tr.n("app-signin-too-many", minutes));
        return sign_in_page(&state, &req, StatusCode::TOO_MANY_REQUESTS, email, error);
    }
    let page = MailSentPage {
        layout: AppLayout::for_request(&req, None),
        email: email.trim().to_owned(),
    };
    render(StatusCode::OK, &page)
}

/// `GET /app/signin/{token}`: the page of a sign-in link, with the button that uses it (or why
/// it cannot be used any more). Looking does not use the link up.
pub async fn show_link(
    state: web::Data<WebState>,
    req: HttpRequest,
    token: web::Path<String>,
) -> AppResult<HttpResponse> {
    let token = token.into_inner();
    let link = {
        let mut conn = state.pool.get().await?;
        email_logins::usable(&mut conn, &hash_token(&token)).await?
    };
    let usable = link.is_some();
    let csrf = sign_in_token(&state, &req, SIGN_IN_COOKIE);
    let page = LinkPage {
        layout: AppLayout::for_request(&req, None),
        csrf: csrf.clone(),
        token,
        usable,
        confirm: link.and_then(|l| l.user_id.map(|_| l.email)),
    };
    let status = if usable {
        StatusCode::OK
    } else {
        StatusCode::GONE
    };
    with_sign_in_cookie(&state, render(status, &page)?, &csrf)
}

#[derive(Deserialize)]
pub struct LinkForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
}

/// `POST /app/signin/link`: uses the link (once) and signs its address in — to its web-only
/// account, created now if this is its first sign-in.
pub async fn use_link(
    state: web::Data<WebState>,
    req: HttpRequest,
    form: web::Form<LinkForm>,
) -> AppResult<HttpResponse> {
    let LinkForm { csrf, token } = form.into_inner();
    if !sign_in_token_matches(&state, &req, SIGN_IN_COOKIE, &csrf) {
        return Err(AppError::Forbidden(
            "the sign-in form's security token is missing or out of date; open the link again"
                .into(),
        ));
    }
    let language = AppLayout::for_request(&req, None).tr.language;
    let mut conn = state.pool.get().await?;
    let Some((address, owner)) = email_logins::consume(&mut conn, &hash_token(&token)).await?
    else {
        tracing::info!("a used, expired or unknown sign-in link was refused");
        let page = LinkPage {
            layout: AppLayout::for_request(&req, None),
            csrf,
            token: String::new(),
            usable: false,
            confirm: None,
        };
        return render(StatusCode::GONE, &page);
    };
    if let Some(owner) = owner {
        let confirmed = users::set_verified_email(&mut conn, owner, &address).await?;
        drop(conn);
        if confirmed.is_none() {
            tracing::info!(user = %owner, "a new address was refused: another account signs in with it");
        } else {
            tracing::info!(user = %owner, "a new sign-in address was confirmed");
        }
        // The browser that asked goes on to its cabinet; any other is only told (the link
        // confirms the address, it does not sign anyone in).
        let own = session::current(&req).is_some_and(|s| s.user.id == owner);
        if own && confirmed.is_some() {
            return Ok(see_other("/app/?done=email#account"));
        }
        let page = EmailConfirmedPage {
            layout: AppLayout::for_request(&req, None),
            email: address,
            taken: confirmed.is_none(),
        };
        let status = if confirmed.is_some() {
            StatusCode::OK
        } else {
            StatusCode::CONFLICT
        };
        return render(status, &page);
    }
    let (user, new) = users::register_web(&mut conn, &address, language).await?;
    drop(conn);
    if user.banned {
        return Err(AppError::Forbidden("this account is banned".into()));
    }
    if new {
        tracing::info!(user = %user.id, "a subscriber signed up on the web");
    }
    signed_in(&state, &req, &user).await
}

/// The answer of a successful sign-in: the session cookie and the way to the cabinet.
async fn signed_in(
    state: &WebState,
    req: &HttpRequest,
    user: &crate::db::models::User,
) -> AppResult<HttpResponse> {
    let cookie = session::open(state, user, crate::web::remote_addr(req)).await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/app/"))
        .append_header((header::SET_COOKIE, cookie))
        .append_header((
            header::SET_COOKIE,
            set_cookie_with(state, SIGN_IN_COOKIE, "", None, SameSite::Strict),
        ))
        .finish())
}

#[derive(Deserialize)]
pub struct EmailChangeForm {
    #[serde(default)]
    email: String,
}

/// `POST /app/settings/email`: mails a link that makes the address this account's sign-in
/// address once opened (a web-only account's new address; a Telegram user's way in without
/// Telegram). Rate-limited as sign-in links are.
pub async fn change_email(
    subscriber: session::Subscriber,
    state: web::Data<WebState>,
    req: HttpRequest,
    form: CsrfForm<EmailChangeForm>,
) -> AppResult<HttpResponse> {
    let CsrfForm(EmailChangeForm { email }) = form;
    let Some(mailer) = state.mailer.clone() else {
        return Err(AppError::NotFound("email (no SMTP_URL)".into()));
    };
    let user = &subscriber.user;
    let address = normalize_email(&email)
        .map_err(|e| AppError::validation("email", e.to_string()))?
        .to_lowercase();
    if user.email_verified_at.is_some()
        && user.email.as_deref().map(str::to_lowercase).as_deref() == Some(address.as_str())
    {
        return Ok(see_other("/app/#account"));
    }
    if let Mailed::TooMany { minutes } =
        mail_link(&state, &req, mailer, user.language, &address, Some(user.id)).await?
    {
        return Err(AppError::TooManyRequests {
            message: format!("too many links asked for; try again in {minutes} min"),
            retry_after: Duration::from_secs(u64::try_from(minutes).unwrap_or(1) * 60),
        });
    }
    tracing::info!(user = %user.id, "a confirmation link for a new sign-in address was mailed");
    let page = MailSentPage {
        layout: AppLayout::for_request(&req, Some(&subscriber)),
        email: address,
    };
    render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct TelegramForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    init_data: String,
}

/// `POST /app/signin/telegram`: the Mini App's `initData`, checked against the bot token and
/// WEBAPP_AUTH_MAX_AGE; the Telegram user is registered as `/start` registers them and signed
/// in. A forged or stale `initData` is refused 403.
pub async fn telegram(
    state: web::Data<WebState>,
    req: HttpRequest,
    form: web::Form<TelegramForm>,
) -> AppResult<HttpResponse> {
    let TelegramForm { csrf, init_data } = form.into_inner();
    if !sign_in_token_matches(&state, &req, SIGN_IN_COOKIE, &csrf) {
        return Err(AppError::Forbidden(
            "the sign-in form's security token is missing or out of date; reload the page".into(),
        ));
    }
    let Some(telegram) = &state.settings.telegram else {
        return Err(AppError::NotFound(
            "Telegram sign-in (no TELEGRAM_BOT_TOKEN)".into(),
        ));
    };
    let max_age = state.settings.bot.webapp_auth_max_age;
    let who = match init_data::verify(&init_data, telegram.token.expose(), max_age, Utc::now()) {
        Ok(who) => who,
        Err(e) => {
            tracing::warn!(error = %e, "Mini App sign-in refused");
            return Err(AppError::Forbidden(
                match e {
                    InitDataError::Stale => "the Mini App's sign-in data is too old: open it again",
                    InitDataError::BadHash | InitDataError::Malformed => {
                        "the Mini App's sign-in data is not signed by this shop's bot"
                    }
                }
                .into(),
            ));
        }
    };
    let profile = TelegramProfile {
        telegram_id: who.id,
        username: who.username,
        first_name: who.first_name,
        last_name: who.last_name,
        language: Language::from_telegram_code(who.language_code.as_deref()),
    };
    let (user, _) = {
        let mut conn = state.pool.get().await?;
        users::register(&mut conn, &profile).await?
    };
    if user.banned {
        return Err(AppError::Forbidden("this account is banned".into()));
    }
    signed_in(&state, &req, &user).await
}

/// `POST /app/signout`: ends this session.
pub async fn sign_out(
    subscriber: session::Subscriber,
    state: web::Data<WebState>,
    _form: CsrfForm<EmptyForm>,
) -> AppResult<HttpResponse> {
    {
        let mut conn = state.pool.get().await?;
        crate::db::user_sessions::delete(&mut conn, subscriber.token_hash()).await?;
    }
    tracing::info!(user = %subscriber.user.id, "subscriber signed out of the cabinet");
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, super::SIGN_IN_PATH))
        .append_header((header::SET_COOKIE, session::session_cookie(&state, None)))
        .finish())
}
