//! The plain-HTTP edge: health and metrics endpoints, the embedded web
//! client, the layers around the whole app (tracing, request ids, CORS),
//! and the accept loop that serves it all on one port.

pub mod files;
pub mod health;
pub mod metrics;
pub mod serve;
pub mod web;

use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// `/healthz` and `/readyz`, and `/metrics` unless it has a listener of
/// its own (METRICS_ADDR).
pub fn routes(health: crate::health::Health, with_metrics: bool) -> Router {
    let routes = Router::new()
        .route("/healthz", axum::routing::get(health::healthz))
        .route("/readyz", axum::routing::get(health::readyz));
    let routes = if with_metrics {
        routes.route("/metrics", axum::routing::get(metrics::metrics))
    } else {
        routes
    };
    routes.with_state(health)
}

/// `/metrics` alone, for its own listener.
pub fn metrics_only(health: crate::health::Health) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(metrics::metrics))
        .with_state(health)
}

/// The app: `routes` and the gRPC router side by side, the web client
/// behind everything else, and the layers around it all. Layer order
/// matters (PITFALLS.md): CORS sits outside everything so a preflight never
/// reaches a service.
pub fn app(routes: Router, grpc: Router, cors_origins: &[String]) -> anyhow::Result<Router> {
    let request_id = HeaderName::from_static("x-request-id");
    let mut app = routes
        .merge(grpc)
        // Replaces the gRPC router's fallback: unknown gRPC methods still get
        // UNIMPLEMENTED (see web::fallback), everything else the web client.
        .fallback(web::fallback)
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid));
    if let Some(cors) = cors(cors_origins)? {
        app = app.layer(cors);
    }
    Ok(app)
}

fn cors(origins: &[String]) -> anyhow::Result<Option<CorsLayer>> {
    let origins: Vec<&str> = origins
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .collect();
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.contains(&"*") {
        AllowOrigin::any()
    } else {
        let list = origins
            .iter()
            .map(|o| HeaderValue::from_str(o).with_context(|| format!("CORS origin {o:?}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        AllowOrigin::list(list)
    };
    let h = HeaderName::from_static;
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                h("x-grpc-web"),
                h("x-user-agent"),
                h("grpc-timeout"),
                h("x-request-id"),
            ])
            .expose_headers([
                h("grpc-status"),
                h("grpc-message"),
                h("grpc-status-details-bin"),
                h("x-request-id"),
                h(crate::limits::RETRY_AFTER),
            ])
            .max_age(Duration::from_secs(24 * 3600)),
    ))
}
