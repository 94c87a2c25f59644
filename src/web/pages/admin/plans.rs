//! The console's plans: the list (active and not), a new plan, a plan's page to change it, and
//! (de)activation. Every change is the API's own function (`sales::plans::{create, update}`):
//! the same checks, messages, transaction and audit row. The admin role changes plans (as in
//! the API); viewers and operators read. A refused form comes back with the input kept and the
//! API's message on it.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError as _, web};
use askama::Template;
use serde::Deserialize;

use super::Layout;
use super::form::{Filled, on_form, optional_money, optional_whole, ticked, whole};
use crate::db::models::Plan;
use crate::db::plans;
use crate::domain::{AdminRole, Currency, Language, PlanId};
use crate::error::{AppError, AppResult};
use crate::web::WebState;
use crate::web::auth::role;
use crate::web::pages::session::{Console, ConsoleSession, CsrfForm};
use crate::web::pages::{render, see_other};
use crate::web::sales::Auditor;
use crate::web::sales::plan_input::{NewPlan, PlanPatch};

/// What `?done=` may say on a plan's page (each a `plan-done-…` text).
pub const PLAN_DONE: [&str; 4] = ["created", "saved", "activated", "deactivated"];

/// Bytes of a GiB, the unit of the traffic field.
const GIB: i64 = 1 << 30;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/plans").get(list).post(create))
        .service(web::resource("/plans/{id}").get(show).post(update))
        .service(web::resource("/plans/{id}/active").post(set_active));
}

/// The plan form's fields as text, as typed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PlanForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    name_ru: String,
    #[serde(default)]
    name_en: String,
    #[serde(default)]
    description_ru: String,
    #[serde(default)]
    description_en: String,
    #[serde(default)]
    days: String,
    /// Roubles ("299", "299.50").
    #[serde(default)]
    price: String,
    #[serde(default)]
    price_stars: String,
    /// GiB per paid period; empty: unlimited.
    #[serde(default)]
    traffic_gib: String,
    #[serde(default)]
    sort_order: String,
    active: Option<String>,
}

impl PlanForm {
    /// The form of a new plan.
    fn blank() -> Self {
        PlanForm {
            days: "30".into(),
            sort_order: "0".into(),
            active: Some("on".into()),
            ..PlanForm::default()
        }
    }

    /// The form of a stored plan.
    fn of(plan: &Plan) -> Self {
        let text = |language| plan.names.get(language).unwrap_or_default().to_owned();
        let description = |language| {
            plan.descriptions
                .get(language)
                .unwrap_or_default()
                .to_owned()
        };
        PlanForm {
            name: plan.name.clone(),
            name_ru: text(Language::Ru),
            name_en: text(Language::En),
            description_ru: description(Language::Ru),
            description_en: description(Language::En),
            days: plan.days.to_string(),
            price: plan.price().to_decimal_string(),
            price_stars: plan.price_stars.map(|s| s.to_string()).unwrap_or_default(),
            traffic_gib: plan.traffic_limit_bytes.map(gib_text).unwrap_or_default(),
            sort_order: plan.sort_order.to_string(),
            active: plan.active.then(|| "on".to_owned()),
        }
    }

    /// The API's new plan of this form (its checks come after, in `create`/`update`).
    fn new_plan(&self) -> AppResult<NewPlan> {
        let texts = |ru: &str, en: &str| {
            [("ru", ru), ("en", en)]
                .into_iter()
                .filter(|(_, t)| !t.trim().is_empty())
                .map(|(l, t)| (l.to_owned(), t.to_owned()))
                .collect()
        };
        let price = optional_money("price_minor", &self.price, Currency::Rub)?
            .ok_or_else(|| AppError::validation("price_minor", "give a price in roubles"))?;
        let traffic = match self.traffic_gib.trim() {
            "" => None,
            text => Some(gib_bytes(text)?),
        };
        let sort_order = optional_whole("sort_order", &self.sort_order)?.unwrap_or(0);
        Ok(NewPlan {
            name: Some(self.name.clone()).filter(|n| !n.trim().is_empty()),
            names: Some(texts(&self.name_ru, &self.name_en)),
            descriptions: Some(texts(&self.description_ru, &self.description_en)),
            days: whole("days", &self.days)?,
            price_minor: price.minor,
            price_stars: optional_whole("price_stars", &self.price_stars)?,
            traffic_limit_bytes: traffic,
            sort_order: i32::try_from(sort_order).map_err(|_| {
                AppError::validation("sort_order", format!("'{sort_order}' is too large"))
            })?,
            active: ticked(&self.active),
        })
    }

    /// The API's change of a plan to what this form says: every field, the default name
    /// included (an empty one is refused, not kept).
    fn patch(&self) -> AppResult<PlanPatch> {
        let new = self.new_plan()?;
        Ok(PlanPatch {
            name: Some(new.name.unwrap_or_default()),
            names: new.names,
            descriptions: new.descriptions,
            days: Some(new.days),
            price_minor: Some(new.price_minor),
            price_stars: Some(new.price_stars),
            traffic_limit_bytes: Some(new.traffic_limit_bytes),
            sort_order: Some(new.sort_order),
            active: Some(new.active),
        })
    }
}

/// Bytes as GiB for the form: whole when they are, else to the MiB.
fn gib_text(bytes: i64) -> String {
    if bytes % GIB == 0 {
        (bytes / GIB).to_string()
    } else {
        format!("{:.3}", bytes as f64 / GIB as f64)
    }
}

/// GiB typed in the form ("50", "0.5") as bytes.
fn gib_bytes(text: &str) -> AppResult<i64> {
    let bad = || {
        AppError::validation(
            "traffic_limit_bytes",
            format!("'{text}' is not a number of GiB like 50 or 0.5"),
        )
    };
    let gib: f64 = text.replace(',', ".").parse().map_err(|_| bad())?;
    let bytes = (gib * GIB as f64).round();
    if !bytes.is_finite() || bytes.abs() >= i64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as i64)
}

#[derive(Template)]
#[template(path = "admin/plans.html")]
struct PlansPage {
    layout: Layout,
    plans: Vec<Plan>,
    /// The admin may change plans: the forms are shown.
    can_edit: bool,
    csrf: String,
    form: Filled<PlanForm>,
}

#[derive(Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}

async fn plans_page(
    state: &WebState,
    req: &HttpRequest,
    session: &ConsoleSession,
    form: Filled<PlanForm>,
) -> AppResult<PlansPage> {
    let mut conn = state.pool.get().await?;
    Ok(PlansPage {
        layout: Layout::of(req, session),
        plans: plans::all(&mut conn).await?,
        can_edit: session.admin.role.allows(AdminRole::Admin),
        csrf: session.csrf.clone(),
        form,
    })
}

/// `GET /admin/plans`: every plan in the bot's order, and a new plan's form for an admin.
pub async fn list(
    console: Console<role::Viewer>,
    state: web::Data<WebState>,
    req: HttpRequest,
) -> AppResult<HttpResponse> {
    let page = plans_page(&state, &req, &console, Filled::new(PlanForm::blank())).await?;
    render(StatusCode::OK, &page)
}

/// `POST /admin/plans`: the API's plan creation.
pub async fn create(
    console: Console<role::Admin>,
    state: web::Data<WebState>,
    req: HttpRequest,
    form: CsrfForm<PlanForm>,
) -> AppResult<HttpResponse> {
    let CsrfForm(form) = form;
    let created = match form.new_plan() {
        Ok(new) => {
            crate::web::sales::plans::create(&state, &Auditor::new(&console.admin, &req), new).await
        }
        Err(e) => Err(e),
    };
    match created {
        Ok(plan) => Ok(see_other(&format!("/admin/plans/{}?done=created", plan.id))),
        Err(e) => {
            let status = e.status_code();
            let form = Filled {
                values: form,
                error: Some(on_form(e)?),
            };
            render(status, &plans_page(&state, &req, &console, form).await?)
        }
    }
}

#[derive(Template)]
#[template(path = "admin/plan.html")]
struct PlanPage {
    layout: Layout,
    /// Where the form posts.
    action: String,
    plan: Plan,
    can_edit: bool,
    csrf: String,
    form: Filled<PlanForm>,
    done: Option<String>,
}

async fn find(state: &WebState, id: PlanId) -> AppResult<Plan> {
    let mut conn = state.pool.get().await?;
    plans::find(&mut conn, id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("plan {id}")))
}

/// `GET /admin/plans/{id}`: a plan, in a form an admin can change.
pub async fn show(
    console: Console<role::Viewer>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
    query: web::Query<DoneQuery>,
) -> AppResult<HttpResponse> {
    let plan = find(&state, PlanId(id.into_inner())).await?;
    render(
        StatusCode::OK,
        &PlanPage {
            layout: Layout::of(&req, &console),
            action: format!("/admin/plans/{}", plan.id),
            can_edit: console.admin.role.allows(AdminRole::Admin),
            csrf: console.csrf.clone(),
            form: Filled::new(PlanForm::of(&plan)),
            plan,
            done: query
                .into_inner()
                .done
                .filter(|d| PLAN_DONE.contains(&d.as_str())),
        },
    )
}

/// `POST /admin/plans/{id}`: the API's plan change, with every field of the form.
pub async fn update(
    console: Console<role::Admin>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
    form: CsrfForm<PlanForm>,
) -> AppResult<HttpResponse> {
    let id = PlanId(id.into_inner());
    let CsrfForm(form) = form;
    let auditor = Auditor::new(&console.admin, &req);
    let updated = match form.patch() {
        Ok(patch) => crate::web::sales::plans::update(&state, &auditor, id, patch).await,
        Err(e) => Err(e),
    };
    match updated {
        Ok(_) => Ok(see_other(&format!("/admin/plans/{id}?done=saved"))),
        Err(e) => {
            let status = e.status_code();
            let error = on_form(e)?;
            let plan = find(&state, id).await?;
            render(
                status,
                &PlanPage {
                    layout: Layout::of(&req, &console),
                    action: format!("/admin/plans/{id}"),
                    plan,
                    can_edit: true,
                    csrf: console.csrf.clone(),
                    form: Filled {
                        values: form,
                        error: Some(error),
                    },
                    done: None,
                },
            )
        }
    }
}

#[derive(Deserialize)]
pub struct ActiveForm {
    active: String,
}

/// `POST /admin/plans/{id}/active`: offer the plan in the bot again (`active=true`) or not any
/// more (`false`), through the API's plan change.
pub async fn set_active(
    console: Console<role::Admin>,
    state: web::Data<WebState>,
    req: HttpRequest,
    id: web::Path<i64>,
    form: CsrfForm<ActiveForm>,
) -> AppResult<HttpResponse> {
    let id = PlanId(id.into_inner());
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
    let patch = PlanPatch {
        active: Some(active),
        ..PlanPatch::default()
    };
    crate::web::sales::plans::update(&state, &Auditor::new(&console.admin, &req), id, patch)
        .await?;
    let done = if active { "activated" } else { "deactivated" };
    Ok(see_other(&format!("/admin/plans/{id}?done={done}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_becomes_the_api_plan() {
        let form = PlanForm {
            name: " ".into(),
            name_ru: "1 месяц".into(),
            price: "299.50".into(),
            traffic_gib: "0.5".into(),
            ..PlanForm::blank()
        };
        let plan = form.new_plan().unwrap();
        assert_eq!(plan.name, None, "an empty default name: the API picks one");
        assert_eq!(plan.names.unwrap().len(), 1);
        assert_eq!(plan.descriptions.unwrap().len(), 0);
        assert_eq!((plan.days, plan.price_minor), (30, 29_950));
        assert_eq!(plan.traffic_limit_bytes, Some(GIB / 2));
        assert!(plan.active);
        let field = |form: PlanForm| match form.new_plan() {
            Err(AppError::Validation { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let bad = |f: fn(&mut PlanForm)| {
            let mut form = PlanForm {
                price: "299".into(),
                ..PlanForm::blank()
            };
            f(&mut form);
            form
        };
        assert_eq!(field(bad(|f| f.days = "a month".into())), "days");
        assert_eq!(field(bad(|f| f.price = "".into())), "price_minor");
        assert_eq!(field(bad(|f| f.price = "2.999".into())), "price_minor");
        assert_eq!(field(bad(|f| f.price_stars = "x".into())), "price_stars");
        assert_eq!(
            field(bad(|f| f.traffic_gib = "lots".into())),
            "traffic_limit_bytes"
        );
        assert_eq!(gib_text(50 * GIB), "50");
        assert_eq!(gib_bytes("50").unwrap(), 50 * GIB);
    }
}
