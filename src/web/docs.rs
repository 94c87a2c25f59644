//! The OpenAPI document (`/openapi.json`) and Swagger UI (`/docs`).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::web::{admin, alerts, auth, broadcasts, health, jobs, sales, support, users};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "vpn-shop admin API",
        description = "Run the VPN shop: accounts, jobs, operations. Log in with \
            `POST /api/v1/auth/login`, then send `Authorization: Bearer <access_token>`. \
            Errors are `{\"error\": {\"code\": \"...\", \"message\": \"...\"}}`."
    ),
    paths(
        health::health,
        health::ready,
        health::metrics,
        auth::login,
        auth::me,
        jobs::list_jobs,
        jobs::get_job,
        jobs::retry_job,
        jobs::discard_job,
        jobs::list_tasks,
        broadcasts::create_broadcast,
        broadcasts::list_broadcasts,
        broadcasts::get_broadcast,
        broadcasts::cancel_broadcast,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail)),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Admin login and identity"),
        (name = "jobs", description = "The durable job queue and periodic tasks"),
        (name = "broadcasts", description = "Messages to many users at once, under Telegram's limits"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
pub struct ApiDoc;

/// The whole document: [`ApiDoc`] and the parts of the endpoint modules.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(users::Api::openapi());
    doc.merge(sales::Api::openapi());
    doc.merge(admin::Api::openapi());
    doc.merge(alerts::Api::openapi());
    doc.merge(support::Api::openapi());
    doc
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}
