//! The admin console under `/admin/`: login, dashboard, users, payments, broadcasts, jobs and
//! syncs, the audit log and admin accounts. The same accounts, roles,
//! lockout and audit log as the REST API; every action calls the function its API route calls.
//! Viewers read; operators act on users; the role is checked by the handler (a hidden button
//! is a courtesy, [`Console`] is the rule).

mod admins;
mod audit;
mod broadcasts;
mod dashboard;
mod form;
mod jobs;
mod login;
mod ops;
mod payments;
mod plans;
mod promo_codes;
mod syncs;
mod users;

pub use dashboard::OverviewSnapshot;

use actix_web::{HttpRequest, web};
use serde::Deserialize;

use super::session::{Console, ConsoleSession, CsrfForm};
use crate::db::admin_sessions;
use crate::domain::{AdminRole, Language};
use crate::error::{AppError, AppResult};
use crate::i18n::pages::Tr;
use crate::web::WebState;
use crate::web::auth::role;

/// Where a browser without a session is sent.
pub const LOGIN_PATH: &str = "/admin/login";

/// The routes of the console.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/admin").get(|| async { super::see_other("/admin/") }))
        .service(
            web::scope("/admin")
                .wrap(actix_web::middleware::from_fn(super::session::load_session))
                .wrap(actix_web::middleware::from_fn(super::page_guard))
                .service(web::resource("/login").get(login::show).post(login::submit))
                .service(web::resource("/logout").post(login::logout))
                .service(web::resource("/language").post(set_language))
                .service(web::resource("/").get(dashboard::show))
                .configure(users::routes)
                .configure(payments::routes)
                .configure(broadcasts::routes)
                .configure(jobs::routes)
                .configure(syncs::routes)
                .configure(audit::routes)
                .configure(admins::routes)
                .configure(plans::routes)
                .configure(promo_codes::routes)
                .default_service(web::to(|| async {
                    Err::<actix_web::HttpResponse, _>(AppError::not_found("page"))
                })),
        );
}

/// What the base layout needs: the reader's texts, the stylesheet, and for a logged-in admin
/// the navigation (who, which page, the CSRF token of the header's forms).
pub struct Layout {
    pub tr: Tr,
    pub css: String,
    /// The console's script, for the pages of a session.
    pub js: String,
    pub nav: Option<Nav>,
}

pub struct Nav {
    pub username: String,
    pub role: AdminRole,
    pub csrf: String,
    /// The page's path, where the language switch comes back to.
    pub path: String,
    /// Which menu entry is the current page: `dashboard`, `users`, `payments`, `plans`,
    /// `promo-codes`, `broadcasts`, `jobs`, `syncs`, `audit`, `admins`.
    pub section: &'static str,
}

impl Nav {
    /// Whether the admin-only entries (audit log, admin accounts) are shown.
    pub fn is_admin(&self) -> bool {
        self.role.allows(AdminRole::Admin)
    }
}

impl Layout {
    /// The layout of a request, with the navigation when there is a session.
    pub fn for_request(req: &HttpRequest, session: Option<&ConsoleSession>) -> Layout {
        let offset = req
            .app_data::<web::Data<WebState>>()
            .map(|s| s.settings.notifications.display_offset)
            .unwrap_or_else(|| chrono::Offset::fix(&chrono::Utc));
        let language = session.map_or_else(|| browser_language(req), |s| s.language);
        let section = match req.path() {
            p if p.starts_with("/admin/users") => "users",
            p if p.starts_with("/admin/payments") => "payments",
            p if p.starts_with("/admin/broadcasts") => "broadcasts",
            p if p.starts_with("/admin/jobs") => "jobs",
            p if p.starts_with("/admin/syncs") => "syncs",
            p if p.starts_with("/admin/audit") => "audit",
            p if p.starts_with("/admin/admins") => "admins",
            p if p.starts_with("/admin/plans") => "plans",
            p if p.starts_with("/admin/promo-codes") => "promo-codes",
            _ => "dashboard",
        };
        Layout {
            tr: Tr::new(language, offset),
            css: super::assets::stylesheet_href(),
            js: super::assets::script_href(),
            nav: session.map(|s| Nav {
                username: s.admin.username.clone(),
                role: s.admin.role,
                csrf: s.csrf.clone(),
                path: req.uri().to_string(),
                section,
            }),
        }
    }

    /// The layout of a page of a live session.
    pub fn of(req: &HttpRequest, session: &ConsoleSession) -> Layout {
        Layout::for_request(req, Some(session))
    }
}

/// The language a browser asks for first (`Accept-Language`), `?lang=` overriding it: Russian
/// for `ru…`, English otherwise.
pub fn browser_language(req: &HttpRequest) -> Language {
    let asked = web::Query::<LangQuery>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.lang.as_deref().and_then(|l| l.parse::<Language>().ok()));
    asked.unwrap_or_else(|| {
        let first = req
            .headers()
            .get(actix_web::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|tag| tag.trim().to_owned());
        Language::from_telegram_code(first.as_deref())
    })
}

#[derive(Deserialize)]
struct LangQuery {
    lang: Option<String>,
}

#[derive(Deserialize)]
struct LanguageForm {
    lang: String,
    back: Option<String>,
}

/// `POST /admin/language`: the console's language for this session; back to the page it was
/// asked on (a path of the console only).
async fn set_language(
    console: Console<role::Viewer>,
    state: web::Data<WebState>,
    form: CsrfForm<LanguageForm>,
) -> AppResult<actix_web::HttpResponse> {
    let CsrfForm(LanguageForm { lang, back }) = form;
    let language = lang
        .parse::<Language>()
        .map_err(|e| AppError::validation("lang", e.to_string()))?;
    let mut conn = state.pool.get().await?;
    admin_sessions::set_language(&mut conn, console.token_hash(), language).await?;
    let back = back
        .filter(|b| b.starts_with("/admin/") && !b.starts_with("//") && !b.contains('\\'))
        .unwrap_or_else(|| "/admin/".to_owned());
    Ok(super::see_other(&back))
}

#[cfg(test)]
mod tests {
    use super::users::Action;
    use crate::actors::messages::SyncKind;
    use crate::domain::alerts::AlertKind;
    use crate::domain::broadcast::Segment;
    use crate::domain::{
        AdminRole, BroadcastStatus, JobState, Language, PaymentProvider, PaymentStatus,
        SubscriptionStatus, SyncRunStatus,
    };
    use crate::i18n::has_message;

    /// The literal message ids of `tr.t("…")` and `tr.n("…", …)` in a template.
    fn literal_ids(text: &str) -> Vec<String> {
        let mut ids = Vec::new();
        for call in [".t(\"", ".n(\""] {
            for part in text.split(call).skip(1) {
                if let Some(end) = part.find('"') {
                    ids.push(part[..end].to_owned());
                }
            }
        }
        ids
    }

    #[test]
    fn every_text_of_the_console_is_in_both_languages() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");
        let mut ids = Vec::new();
        let mut stack = vec![std::path::PathBuf::from(dir)];
        while let Some(path) = stack.pop() {
            for entry in std::fs::read_dir(&path).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    ids.extend(literal_ids(&std::fs::read_to_string(&path).unwrap()));
                }
            }
        }
        assert!(ids.len() > 50, "found the templates' texts: {}", ids.len());
        let key = |prefix: &str, value: &str| format!("{prefix}-{}", value.replace('_', "-"));
        ids.extend(AdminRole::ALL.iter().map(|r| key("role", r.as_str())));
        ids.extend(
            PaymentProvider::ALL
                .iter()
                .map(|p| key("provider", p.as_str())),
        );
        ids.extend(
            SubscriptionStatus::ALL
                .iter()
                .map(|s| key("status", s.as_str())),
        );
        ids.extend(
            PaymentStatus::ALL
                .iter()
                .map(|s| key("payment", s.as_str())),
        );
        ids.extend(SyncRunStatus::ALL.iter().map(|s| key("run", s.as_str())));
        ids.extend(AlertKind::ALL.iter().map(|k| key("alert-kind", k.as_str())));
        ids.extend(SyncKind::ALL.iter().map(|k| key("sync", k.as_str())));
        ids.extend(
            BroadcastStatus::ALL
                .iter()
                .map(|s| key("bc-status", s.as_str())),
        );
        ids.extend(Segment::ALL.iter().map(|s| key("segment", s.as_str())));
        ids.extend(Language::ALL.iter().map(|l| key("language", l.as_str())));
        ids.extend(JobState::ALL.iter().map(|s| key("job", s.as_str())));
        for field in ["text", "button_text", "button_url", "segment", "language"] {
            ids.push(key("bc-field", field));
        }
        for done in ["created", "role", "active", "password", "deleted"] {
            ids.push(key("admins-done", done));
        }
        ids.extend(
            [
                "jobs-done-retry",
                "jobs-done-discard",
                "eta-seconds",
                "eta-minutes",
                "bc-handled",
                "bc-remaining",
                "bc-cancel-title",
                "bc-cancel-what",
                "bc-cancel-do",
                "jobs-discard-title",
                "jobs-discard-what",
                "jobs-discard-do",
                "admins-delete-title",
                "admins-delete-what",
                "admins-delete-do",
                "admins-role",
            ]
            .map(String::from),
        );
        for done in super::plans::PLAN_DONE {
            ids.push(key("plan-done", done));
        }
        for done in super::promo_codes::PROMO_DONE {
            ids.push(key("promo-done", done));
        }
        ids.extend(
            crate::domain::PromoKind::ALL
                .iter()
                .map(|k| key("promo-kind", k.as_str())),
        );
        for action in Action::ALL {
            for prefix in ["done", "confirm-title", "confirm-what", "confirm-do"] {
                ids.push(key(prefix, action.slug()));
            }
        }
        ids.extend(
            [
                "error-forbidden",
                "error-not-found",
                "error-conflict",
                "error-invalid",
                "error-too-many",
                "error-server",
                "error-other",
                "login-wrong",
                "login-missing",
                "login-locked",
                "period-today",
                "period-7d",
                "period-30d",
            ]
            .map(String::from),
        );
        for language in [Language::En, Language::Ru] {
            let missing: Vec<_> = ids.iter().filter(|id| !has_message(language, id)).collect();
            assert!(missing.is_empty(), "{language}: {missing:?}");
        }
    }
}
