//! The console's promo codes: the list (with how often each was used), a new code, a code's
//! page to change it with who redeemed it, and (de)activation. Every change is the API's own
//! function (`sales::promo_codes::{create, update}`): the same checks, messages, transaction
//! and audit row. Operators and admins change codes (as in the API); viewers read. A refused
//! form comes back with the input kept and the API's message on it.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError as _, web};
use askama::Template;
use serde::Deserialize;

use super::Layout;
use super::form::{
    Filled, input_of_time, on_form, optional_money, optional_whole, rfc3339_of_input, ticked, whole,
};
use crate::db::models::{Plan, PromoCode, PromoRedemption};
use crate::db::{plans, promo};
use crate::domain::{AdminRole, Currency, Money, PromoCodeId, PromoKind};
use crate::error::{AppError, AppResult};
use crate::web::WebState;
use crate::web::auth::role;
use crate::web::jobs::pagination;
use crate::web::pages::session::{Console, ConsoleSession, CsrfForm};
use crate::web::pages::{render, see_other};
use crate::web::sales::Auditor;
use crate::web::sales::promo_input::{NewPromo, PromoPatch};

/// Codes per page of the list.
const PER_PAGE: i64 = 25;
/// Redemptions a code's page lists.
const REDEMPTIONS_SHOWN: i64 = 20;
/// What `?done=` may say on a code's page (each a `promo-done-…` text).
pub const PROMO_DONE: [&str; 4] = ["created", "saved", "activated", "deactivated"];
/// The minimum plan select's value for "keep the stored number of days" (no plan has them).
const KEEP_MIN_PLAN: &str = "keep";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/promo-codes").get(list).post(create))
        .service(web::resource("/promo-codes/{id}").get(show).post(update))
        .service(web::resource("/promo-codes/{id}/active").post(set_active));
}

/// The promo code form's fields as text, as typed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PromoForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    kind: String,
    /// Percent, roubles off (`fixed`) or days.
    #[serde(default)]
    value: String,
    #[serde(default)]
    max_uses: String,
    once_per_user: Option<String>,
    new_users_only: Option<String>,
    /// `datetime-local` (UTC).
    #[serde(default)]
    valid_from: String,
    #[serde(default)]
    valid_until: String,
    /// A plan id, empty for none, or [`KEEP_MIN_PLAN`].
    #[serde(default)]
    min_plan: String,
    active: Option<String>,
    #[serde(default)]
    note: String,
}

impl PromoForm {
    fn blank() -> Self {
        PromoForm {
            kind: PromoKind::Percent.as_str().to_owned(),
            once_per_user: Some("on".into()),
            active: Some("on".into()),
            ..PromoForm::default()
        }
    }

    /// The form of a stored code; its minimum plan is the plan of that many days, if one has.
    fn of(p: &PromoCode, plans: &[Plan]) -> Self {
        let min_plan = match p.min_plan_days {
            None => String::new(),
            Some(days) => plans
                .iter()
                .find(|plan| plan.days == days)
                .map_or_else(|| KEEP_MIN_PLAN.to_owned(), |plan| plan.id.to_string()),
        };
        let on = |b: bool| b.then(|| "on".to_owned());
        PromoForm {
            code: p.code.clone(),
            kind: p.kind.as_str().to_owned(),
            value: match p.kind {
                PromoKind::Fixed => Money::rub_kopecks(p.value).to_decimal_string(),
                _ => p.value.to_string(),
            },
            max_uses: p.max_uses.map(|m| m.to_string()).unwrap_or_default(),
            once_per_user: on(p.once_per_user),
            new_users_only: on(p.new_users_only),
            valid_from: input_of_time(p.valid_from),
            valid_until: input_of_time(p.valid_until),
            min_plan,
            active: on(p.active),
            note: p.note.clone().unwrap_or_default(),
        }
    }

    /// The value in the API's unit: kopecks for a `fixed` code (typed in roubles).
    fn api_value(&self) -> AppResult<i64> {
        if self.kind.trim() == PromoKind::Fixed.as_str() {
            optional_money("value", &self.value, Currency::Rub)?
                .map(|m| m.minor)
                .ok_or_else(|| AppError::validation("value", "give the roubles off"))
        } else {
            whole("value", &self.value)
        }
    }

    /// The minimum plan: `None` keeps what is stored, `Some(None)` is none.
    fn min_plan_id(&self) -> AppResult<Option<Option<i64>>> {
        match self.min_plan.trim() {
            KEEP_MIN_PLAN => Ok(None),
            text => optional_whole("min_plan_id", text).map(Some),
        }
    }

    /// The API's new code of this form (its checks come after, in `create`).
    fn new_promo(&self) -> AppResult<NewPromo> {
        Ok(NewPromo {
            code: self.code.clone(),
            kind: self.kind.clone(),
            value: self.api_value()?,
            max_uses: optional_whole("max_uses", &self.max_uses)?,
            once_per_user: ticked(&self.once_per_user),
            new_users_only: ticked(&self.new_users_only),
            valid_from: rfc3339_of_input(&self.valid_from),
            valid_until: rfc3339_of_input(&self.valid_until),
            min_plan_id: self.min_plan_id()?.flatten(),
            active: ticked(&self.active),
            note: Some(self.note.clone()),
        })
    }

    /// The API's change of a code to what this form says (every field).
    fn patch(&self) -> AppResult<PromoPatch> {
        Ok(PromoPatch {
            code: Some(self.code.clone()),
            kind: Some(self.kind.clone()),
            value: Some(self.api_value()?),
            max_uses: Some(optional_whole("max_uses", &self.max_uses)?),
            once_per_user: Some(ticked(&self.once_per_user)),
            new_users_only: Some(ticked(&self.new_users_only)),
            valid_from: Some(rfc3339_of_input(&self.valid_from)),
            valid_until: Some(rfc3339_of_input(&self.valid_until)),
            min_plan_id: self.min_plan_id()?,
            active: Some(ticked(&self.active)),
            note: Some(Some(self.note.clone())),
        })
    }
}

#[derive(Template)]
#[template(path = "admin/promo_codes.html")]
struct PromoCodesPage {
    layout: Layout,
    items: Vec<PromoCode>,
    total: i64,
    page: i64,
    pages: i64,
    q: String,
    pager_href: String,
    /// The admin may change codes (operator or admin): the forms are shown.
    can_edit: bool,
    csrf: String,
    form: Filled<PromoForm>,
    plans: Vec<Plan>,
    /// A stored minimum that no plan has (only on a code's page).
    kept_days: Option<i32>,
    kinds: &'static [PromoKind],
    /// The currency of `fixed` codes.
    rub: Currency,
}

#[derive(Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    page: Option<i64>,
}

async fn list_page(
    state: &WebState,
    req: &HttpRequest,
    session: &ConsoleSession,
    query: ListQuery,
    form: Filled<PromoForm>,
) -> AppResult<PromoCodesPage> {
    let (page, per_page) = pagination(query.page, Some(PER_PAGE))?;
    let q = query.q.unwrap_or_default();
    let prefix = Some(q.trim()).filter(|q| !q.is_empty());
    let mut conn = state.pool.get().await?;
    let (items, total) = promo::list(&mut conn, None, prefix, page, per_page).await?;
    let pager_href = format!(
        "/admin/promo-codes?{}",
        serde_urlencoded::to_string([("q", q.as_str())]).unwrap_or_default()
    );
    Ok(PromoCodesPage {
        layout: Layout::of(req, session),
        items,
        total,
        page,
        pages: ((total + per_page - 1) / per_page).max(1),
        q,
        pager_href,
        can_edit: session.admin.role.allows(AdminRole::Operator),
        csrf: session.csrf.clone(),
        form,
        plans: plans::all(&mut conn).await?,
        kept_days: None,
        kinds: PromoKind::ALL,
        rub: Currency::Rub,
    })
}

/// `GET /admin/promo-codes?q=…&page=…`: the codes, newest first, and a new code's form.
pub async fn list(
    console: Console<role::Viewer>,
    state: web::Data<WebState>,
    req: HttpRequest,
    query: web::Query<ListQuery>,
) -> AppResult<HttpResponse> {
    let form = Filled::new(PromoForm::blank());
    let page = list_page(&state, &req, &console, query.into_inner(), form).await?;
    render(StatusCode::OK, &page)
}

/// `POST /admin/promo-codes`: the API's promo code creation.
pub async fn create(
    console: Console<role::Operator>,
    state: web::Data<WebState>,
    req: HttpRequest,
    form: CsrfForm<PromoForm>,
) -> AppResult<HttpResponse> {
    let CsrfForm(form) = form;
    let created = match form.new_promo() {
        Ok(new) => {
            let auditor = Auditor::new(&console.admin, &req);
            crate::web::sales::promo_codes::create(&state, &auditor, new).await
        }
        Err(e) => Err(e),
    };
    match created {
        Ok(code) => Ok(see_other(&format!(
            "/admin/promo-codes/{}?done=created",
            code.id
        ))),
        Err(e) => {
            let status = e.status_code();
            let form = Filled {
                values: form,
                error: Some(on_form(e)?),
            };
            let query = ListQuery {
                q: None,
                page: None,
            };
            render(
                status,
                &list_page(&state, &req, &console, query, form).await?,
            )
        }
    }
}

#[derive(Template)]
#[template(path = "admin/promo_code.html")]
struct PromoCodePage {
    layout: Layout,
    /// Where the form posts.
    action: String,
    promo: PromoCode,
    redemptions: Vec<(PromoRedemption, Option<i64>, Option<String>)>,
    redemptions_total: i64,
    can_edit: bool,
    csrf: String,
    form: Filled<PromoForm>,
    plans: Vec<Plan>,
    kept_days: Option<i32>,
    kinds: &'static [PromoKind],
    rub: Currency,
    done: Option<String>,
}

#[derive(Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}

async fn code_page(
    state: &WebState,
    req: &HttpRequest,
    session: &ConsoleSession,
    id: PromoCodeId,
    form: Option<Filled<PromoForm>>,
    done: Option<String>,
) -> AppResult<PromoCodePage> {
    let mut conn = state.pool.get().await?;
    let promo = promo::find(&mut conn, id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("promo code {id}")))?;
    let plans = plans::all(&mut conn).await?;
    let (redemptions, redemptions_total) =
        promo::redemptions(&mut conn, id, 1, REDEMPTIONS_SHOWN).await?;
    let form = form.unwrap_or_else(|| Filled::new(PromoForm::of(&promo, &plans)));
    Ok(PromoCodePage {
        layout: Layout::of(req, session),
        action: format!("/admin/promo-codes/{id}"),
        kept_days: promo
            .min_plan_days
            .filter(|days| !plans.iter().any(|p| p.days == *days)),
        promo,
        redemptions,
        redemptions_total,
        can_edit: session.admin.role.allows(AdminRole::Operator),
        csrf: session.csrf.clone(),
        form,
        plans,
        kinds: PromoKind::ALL,
        rub: Currency::Rub,
        done: done.filter(|d| PROMO_DONE.contains(&d.as_str())),
    })
}

/// `GET /admin/promo-codes/{id}`: a code, its form and who redeemed it.
pub async fn show(
    console: Console<role::Viewer>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
    query: web::Query<DoneQuery>,
) -> AppResult<HttpResponse> {
    let id = PromoCodeId(id.into_inner());
    let page = code_page(&state, &req, &console, id, None, query.into_inner().done).await?;
    render(StatusCode::OK, &page)
}

/// `POST /admin/promo-codes/{id}`: the API's promo code change, with every field of the form.
pub async fn update(
    console: Console<role::Operator>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
    form: CsrfForm<PromoForm>,
) -> AppResult<HttpResponse> {
    let id = PromoCodeId(id.into_inner());
    let CsrfForm(form) = form;
    let auditor = Auditor::new(&console.admin, &req);
    let updated = match form.patch() {
        Ok(patch) => crate::web::sales::promo_codes::update(&state, &auditor, id, patch).await,
        Err(e) => Err(e),
    };
    match updated {
        Ok(_) => Ok(see_other(&format!("/admin/promo-codes/{id}?done=saved"))),
        Err(e) => {
            let status = e.status_code();
            let form = Filled {
                values: form,
                error: Some(on_form(e)?),
            };
            let page = code_page(&state, &req, &console, id, Some(form), None).await?;
            render(status, &page)
        }
    }
}

#[derive(Deserialize)]
pub struct ActiveForm {
    active: String,
}

/// `POST /admin/promo-codes/{id}/active`: the code can be used again (`active=true`) or not
/// any more (`false`), through the API's promo code change.
pub async fn set_active(
    console: Console<role::Operator>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
    form: CsrfForm<ActiveForm>,
) -> AppResult<HttpResponse> {
    let id = PromoCodeId(id.into_inner());
    let CsrfForm(ActiveForm { active }) = form;
    let active = match active.as_str() {
        "true" => true,
        "false" => false,
        other => {
            return Err(AppError::validation(
                "active",
                format!("'{other}' is neither true nor false"),
            ));
        }
    };
    let patch = PromoPatch {
        active: Some(active),
        ..PromoPatch::default()
    };
    let auditor = Auditor::new(&console.admin, &req);
    crate::web::sales::promo_codes::update(&state, &auditor, id, patch).await?;
    let done = if active { "activated" } else { "deactivated" };
    Ok(see_other(&format!("/admin/promo-codes/{id}?done={done}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_becomes_the_api_code() {
        let form = PromoForm {
            code: "winter-25".into(),
            kind: "fixed".into(),
            value: "50".into(),
            valid_until: "2027-01-01T00:00".into(),
            ..PromoForm::blank()
        };
        let new = form.new_promo().unwrap();
        assert_eq!(new.value, 5_000, "roubles off become kopecks");
        assert_eq!(new.valid_until.as_deref(), Some("2027-01-01T00:00:00Z"));
        assert_eq!(
            (new.valid_from, new.max_uses, new.min_plan_id),
            (None, None, None)
        );
        assert!(new.once_per_user && new.active && !new.new_users_only);
        let percent = PromoForm {
            value: "25".into(),
            ..PromoForm::blank()
        };
        assert_eq!(percent.new_promo().unwrap().value, 25);
        let keep = PromoForm {
            min_plan: KEEP_MIN_PLAN.into(),
            value: "25".into(),
            ..PromoForm::blank()
        };
        assert_eq!(keep.patch().unwrap().min_plan_id, None, "kept");
        let none = PromoForm {
            value: "25".into(),
            ..PromoForm::blank()
        };
        assert_eq!(none.patch().unwrap().min_plan_id, Some(None), "cleared");
        let bad = PromoForm {
            value: "a lot".into(),
            ..PromoForm::blank()
        };
        match bad.new_promo() {
            Err(AppError::Validation { field, .. }) => assert_eq!(field, "value"),
            other => panic!("{other:?}"),
        }
    }
}
