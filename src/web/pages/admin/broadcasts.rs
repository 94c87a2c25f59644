//! The console's broadcasts: the list, the compose form with a preview (server-rendered on
//! "Preview", and live while typing with the console's script) and the audience's size, and the
//! send after that confirmation; a broadcast's page with its progress and cancel is
//! [`progress`]. Sending and cancelling call the API's functions ([`create`],
//! [`crate::web::broadcasts::cancel`]): same validation, same transaction, same audit rows.
//! Viewers read; operators compose, send and cancel.

mod progress;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::Layout;
use crate::db::broadcasts;
use crate::db::models::Broadcast;
use crate::domain::broadcast::{Audience, Segment, preview_html, validate};
use crate::domain::{AdminRole, BroadcastId, BroadcastStatus, Language};
use crate::error::{AppError, AppResult};
use crate::i18n::pages::Tr;
use crate::web::WebState;
use crate::web::auth::role;
use crate::web::broadcasts::{NewBroadcast, create};
use crate::web::pages::session::{Console, CsrfForm};
use crate::web::pages::{render, see_other};

/// Broadcasts the list shows, newest first.
const LISTED: i64 = 50;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/broadcasts").get(list))
        .service(web::resource("/broadcasts/new").get(compose).post(submit))
        .service(web::resource("/broadcasts/preview").post(preview))
        // After `new` and `preview`, which `{id}` would match too.
        .configure(progress::routes);
}

/// A broadcast's audience as stored (JSON), read back; `None` for a shape this build does not
/// know.
fn audience_of(b: &Broadcast) -> Option<Audience> {
    serde_json::from_value(b.audience.clone()).ok()
}

/// One line of the list.
struct ListLine {
    id: BroadcastId,
    status: BroadcastStatus,
    /// The first characters of the text, tags removed.
    excerpt: String,
    segment: Option<&'static str>,
    language: Option<Language>,
    total: i32,
    done: i64,
    created_at: DateTime<Utc>,
}

/// The text of a Telegram HTML message without its tags, at most `max` characters.
fn excerpt(html: &str, max: usize) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    let out = out.split_whitespace().collect::<Vec<_>>().join(" ");
    match out.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &out[..at]),
        None => out,
    }
}

#[derive(Template)]
#[template(path = "admin/broadcasts.html")]
struct ListPage {
    layout: Layout,
    items: Vec<ListLine>,
    can_send: bool,
}

/// `GET /admin/broadcasts`: the newest broadcasts with their progress.
async fn list(
    console: Console<role::Viewer>,
    state: web::Data<WebState>,
    req: HttpRequest,
) -> AppResult<HttpResponse> {
    let mut conn = state.pool.get().await?;
    let items = broadcasts::list(&mut conn, LISTED)
        .await?
        .into_iter()
        .map(|b| {
            let audience = audience_of(&b);
            ListLine {
                id: b.id,
                status: b.status,
                excerpt: excerpt(&b.text, 80),
                segment: audience.map(|a| a.segment.as_str()),
                language: audience.and_then(|a| a.language),
                total: b.total,
                done: i64::from(b.sent) + i64::from(b.failed) + i64::from(b.blocked),
                created_at: b.created_at,
            }
        })
        .collect();
    render(
        StatusCode::OK,
        &ListPage {
            layout: Layout::of(&req, &console),
            items,
            can_send: console.admin.role.allows(AdminRole::Operator),
        },
    )
}

/// The fields of the compose form, as typed.
#[derive(Debug, Default, Deserialize)]
struct ComposeForm {
    #[serde(default)]
    text: String,
    #[serde(default)]
    button_text: String,
    #[serde(default)]
    button_url: String,
    #[serde(default)]
    segment: String,
    #[serde(default)]
    language: String,
    /// Present when the admin pressed "Send" under a preview.
    confirm: Option<String>,
}

impl ComposeForm {
    fn audience(&self) -> AppResult<Audience> {
        let segment = Segment::ALL
            .into_iter()
            .find(|s| s.as_str() == self.segment)
            .ok_or_else(|| {
                AppError::validation("segment", format!("'{}' is not an audience", self.segment))
            })?;
        let language = match self.language.as_str() {
            "" => None,
            l => Some(
                l.parse::<Language>()
                    .map_err(|e| AppError::validation("language", e.to_string()))?,
            ),
        };
        Ok(Audience { segment, language })
    }

    fn button(&self) -> (Option<String>, Option<String>) {
        let some = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        (some(&self.button_text), some(&self.button_url))
    }

    /// The API's request body of this form.
    fn request(&self) -> AppResult<NewBroadcast> {
        let (button_text, button_url) = self.button();
        Ok(NewBroadcast {
            text: self.text.clone(),
            button_text,
            button_url,
            audience: self.audience()?,
        })
    }
}

/// What the preview shows: the message as subscribers will see it, or what to fix; and how
/// many users the audience holds now.
struct PreviewView {
    /// Safe HTML of the message ([`preview_html`]); `None` before anything was typed.
    html: Option<String>,
    button: Option<(String, String)>,
    /// The field to fix and why (the API's validation message).
    error: Option<(String, String)>,
    audience_size: Option<i64>,
}

impl PreviewView {
    /// The message is valid and the audience holds someone: the send button is offered.
    fn can_send(&self) -> bool {
        self.error.is_none() && self.audience_size.is_some_and(|n| n > 0)
    }
}

async fn preview_of(state: &WebState, form: &ComposeForm) -> AppResult<PreviewView> {
    if form.text.trim().is_empty() {
        return Ok(PreviewView {
            html: None,
            button: None,
            error: None,
            audience_size: None,
        });
    }
    let audience = form.audience();
    let (button_text, button_url) = form.button();
    let checked = validate(&form.text, button_text.as_deref(), button_url.as_deref());
    let audience_size = match &audience {
        Ok(a) => {
            let mut conn = state.pool.get().await?;
            Some(broadcasts::count_audience(&mut conn, *a).await?)
        }
        Err(_) => None,
    };
    let error = match (&checked, &audience) {
        (Err(e), _) => Some((e.field.to_owned(), e.message.clone())),
        (_, Err(AppError::Validation { field, message })) => Some((field.clone(), message.clone())),
        _ => None,
    };
    Ok(PreviewView {
        html: Some(preview_html(&form.text)),
        button: checked.ok().and_then(|m| m.button),
        error,
        audience_size,
    })
}

#[derive(Template)]
#[template(path = "admin/broadcast_new.html")]
struct ComposePage {
    layout: Layout,
    csrf: String,
    form: ComposeForm,
    preview: PreviewView,
    segments: [Segment; 5],
    languages: &'static [Language],
    /// Why the send was refused (e.g. no bot is configured).
    refused: Option<String>,
}

#[derive(Template)]
#[template(path = "partials/broadcast_preview.html")]
struct PreviewFragment {
    tr: Tr,
    preview: PreviewView,
}

fn compose_page(
    req: &HttpRequest,
    console: &Console<role::Operator>,
    form: ComposeForm,
    preview: PreviewView,
    refused: Option<String>,
) -> ComposePage {
    ComposePage {
        layout: Layout::of(req, console),
        csrf: console.csrf.clone(),
        form,
        preview,
        segments: Segment::ALL,
        languages: Language::ALL,
        refused,
    }
}

/// `GET /admin/broadcasts/new`: the empty form.
async fn compose(console: Console<role::Operator>, req: HttpRequest) -> AppResult<HttpResponse> {
    let form = ComposeForm {
        segment: Segment::All.as_str().to_owned(),
        ..ComposeForm::default()
    };
    let preview = PreviewView {
        html: None,
        button: None,
        error: None,
        audience_size: None,
    };
    render(
        StatusCode::OK,
        &compose_page(&req, &console, form, preview, None),
    )
}

/// `POST /admin/broadcasts/new`: without `confirm`, the form again with its preview and the
/// audience's size (the confirmation); with it, the broadcast is created as the API creates it
/// and the browser goes to its progress.
async fn submit(
    console: Console<role::Operator>,
    state: web::Data<WebState>,
    req: HttpRequest,
    form: CsrfForm<ComposeForm>,
) -> AppResult<HttpResponse> {
    let CsrfForm(form) = form;
    if form.confirm.is_some() {
        let remote = crate::web::remote_addr(&req);
        let refused = match form.request() {
            Ok(request) => match create(&state, &console.admin, remote, request).await {
                Ok(broadcast) => {
                    return Ok(see_other(&format!("/admin/broadcasts/{}", broadcast.id)));
                }
                Err(e @ (AppError::Validation { .. } | AppError::Conflict(_))) => e,
                Err(e) => return Err(e),
            },
            Err(e) => e,
        };
        // Shown on the form, with the status the API answers (422, or 409 without a bot).
        let status = actix_web::ResponseError::status_code(&refused);
        let preview = preview_of(&state, &form).await?;
        return render(
            status,
            &compose_page(&req, &console, form, preview, Some(refused.to_string())),
        );
    }
    let preview = preview_of(&state, &form).await?;
    render(
        StatusCode::OK,
        &compose_page(&req, &console, form, preview, None),
    )
}

/// `POST /admin/broadcasts/preview`: the preview fragment of the form as typed so far (what
/// the script puts under the form while the admin types).
async fn preview(
    console: Console<role::Operator>,
    state: web::Data<WebState>,
    req: HttpRequest,
    form: CsrfForm<ComposeForm>,
) -> AppResult<HttpResponse> {
    let CsrfForm(form) = form;
    let preview = preview_of(&state, &form).await?;
    render(
        StatusCode::OK,
        &PreviewFragment {
            tr: Layout::of(&req, &console).tr,
            preview,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_excerpt_is_the_text_without_tags_cut_at_a_character() {
        assert_eq!(excerpt("<b>Sale</b> &amp;\n<i>more</i>", 80), "Sale & more");
        assert_eq!(excerpt("привет мир", 6), "привет…");
    }
}
