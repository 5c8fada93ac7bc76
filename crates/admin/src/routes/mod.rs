//! The admin API's routes, gathered with the OpenAPI document they generate.

mod audit;
mod credentials;
mod members;
mod policy;
mod secrets;
mod servers;
mod sessions;
mod tenants;
mod usage;

use axum::Json;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, header};
use axum::response::{Html, Response};
use switchboard_domain::tenancy::TenantId;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AdminState;
use crate::access::{Admin, Who};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::views::MeView;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard admin API",
        description = "Manage tenants, their members, groups, roles, grants, API keys and \
                       service clients. Authenticate with `Authorization: Bearer`: a platform \
                       admin token (`sba_…`) for everything, or a tenant owner's or admin's API \
                       key or token for their own tenant. Errors are \
                       `{\"error\": {\"code\", \"message\", \"field\"}}`; another tenant's \
                       objects are answered 404. Lists are paged with `limit` and `cursor`."
    ),
    modifiers(&Bearer),
    tags(
        (name = "tenants", description = "Organisations using the gateway"),
        (name = "members", description = "Users of a tenant and their roles"),
        (name = "groups", description = "Named sets of members, granted servers and tools"),
        (name = "roles", description = "Custom roles: permission sets"),
        (name = "grants", description = "Who may use which servers and items"),
        (name = "api-keys", description = "Keys for MCP clients"),
        (name = "clients", description = "Machine identities (OAuth client credentials)"),
        (name = "usage", description = "Calls, errors, latency and bytes; quotas"),
        (name = "servers", description = "Upstream servers a tenant can reach, and their health"),
        (name = "sessions", description = "Open legacy sessions: list, terminate"),
        (name = "audit", description = "The tamper-evident audit trail: search, export, verify"),
        (name = "secrets", description = "Write-only secrets of a tenant or a user (upstream credentials)"),
        (name = "me", description = "The caller"),
    )
)]
struct Doc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

fn api() -> OpenApiRouter<AdminState> {
    OpenApiRouter::with_openapi(Doc::openapi())
        .routes(routes!(me))
        .merge(tenants::routes())
        .merge(members::routes())
        .merge(policy::routes())
        .merge(credentials::routes())
        .merge(usage::routes())
        .merge(secrets::routes())
        .merge(audit::routes())
        .merge(servers::routes())
        .merge(sessions::routes())
}

/// The OpenAPI 3.1 document of the admin API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    with_error_answers(api().into_openapi())
}

/// Errors any operation may answer, besides those its own documentation lists: every one
/// in the one error shape. Written once here rather than on each handler.
fn with_error_answers(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::schema::Ref;
    use utoipa::openapi::{Content, RefOr, ResponseBuilder};
    let answer = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                )
                .build(),
        )
    };
    let always: &[(&str, &str)] = &[
        (
            "400",
            "The path, query or body is not valid (the message says what to fix)",
        ),
        ("401", "No credential, or one that is not valid"),
        ("403", "The credential may not do this"),
        ("404", "No such object (or one of another tenant)"),
        (
            "422",
            "A parameter or field is not valid (`field` names it)",
        ),
        ("429", "Rate limited; Retry-After says when to try again"),
        (
            "503",
            "The gateway cannot answer now (database or audit log unavailable)",
        ),
    ];
    let with_body: &[(&str, &str)] = &[
        (
            "409",
            "The object exists already, or conflicts with another",
        ),
        ("413", "The body is too large"),
        (
            "415",
            "The body is not JSON (send Content-Type: application/json)",
        ),
    ];
    for item in doc.paths.paths.values_mut() {
        let operations = [
            (&mut item.get, false),
            (&mut item.delete, false),
            (&mut item.post, true),
            (&mut item.put, true),
            (&mut item.patch, true),
        ];
        for (operation, body) in operations {
            let Some(operation) = operation.as_mut() else {
                continue;
            };
            let extra = if body { with_body } else { &[] };
            for (status, description) in always.iter().chain(extra) {
                operation
                    .responses
                    .responses
                    .entry((*status).to_owned())
                    .or_insert_with(|| answer(description));
            }
        }
    }
    doc
}

/// The admin API's router (`/admin/v1/…`, with `openapi.json` and `docs`). Every answer
/// carries `Cache-Control: no-store`: some hold secrets shown once.
pub fn router(state: AdminState) -> axum::Router {
    let (router, doc) = api().split_for_parts();
    let doc = with_error_answers(doc);
    let document = std::sync::Arc::new(doc.to_json().unwrap_or_else(|_| "{}".to_owned()));
    let page = std::sync::Arc::new(crate::docs::page(&doc));
    router
        .route(
            "/admin/v1/openapi.json",
            axum::routing::get(move || {
                let document = document.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        document.as_str().to_owned(),
                    )
                }
            }),
        )
        .route(
            "/admin/v1/docs",
            axum::routing::get(move || {
                let page = page.clone();
                async move { Html(page.as_str().to_owned()) }
            }),
        )
        .route("/admin/v1", axum::routing::any(unknown))
        .route("/admin/v1/{*rest}", axum::routing::any(unknown))
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(crate::extract::MAX_BODY))
        .layer(axum::middleware::map_response(no_store))
        .with_state(state)
}

async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn unknown() -> ApiError {
    ApiError::not_found_route()
}

async fn wrong_method() -> ApiError {
    ApiError::method_not_allowed()
}

/// A tenant id from a path: one that cannot exist is simply not found.
pub(crate) fn path_tenant(value: &str) -> ApiResult<TenantId> {
    TenantId::new(value).map_err(|_| ApiError::not_found("tenant", value))
}

/// Who the credential belongs to: kind, tenant, identity, roles.
#[utoipa::path(get, path = "/admin/v1/me", tag = "me",
    responses((status = 200, description = "The caller", body = MeView),
              (status = 401, description = "No usable credential", body = ErrorBody)),
    security(("bearer" = [])))]
async fn me(admin: Admin, State(_): State<AdminState>) -> Json<MeView> {
    let credential = admin.credential();
    Json(match &admin.who {
        Who::Platform { .. } => MeView {
            kind: "platform".into(),
            tenant: None,
            identity: admin.actor(),
            roles: Vec::new(),
            credential,
        },
        Who::Tenant(p) => MeView {
            kind: "tenant".into(),
            tenant: Some(p.tenant.to_string()),
            identity: p.identity.to_string(),
            roles: p.roles.iter().map(ToString::to_string).collect(),
            credential,
        },
    })
}
