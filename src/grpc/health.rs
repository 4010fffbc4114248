//! `grpc.health.v1`: SERVING only while storage is reachable (see
//! [`crate::health`]), NOT_SERVING once shutdown begins.

use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::health::Health;

/// The gRPC services whose health is reported (plus "" for the server).
const SERVICES: [&str; 5] = [
    "",
    "messaging.UsersService",
    "messaging.ChatsService",
    "messaging.MessagesService",
    "messaging.EventsService",
];

/// Keeps `reporter` in step with `health` until the server stops.
pub fn spawn_reporter(reporter: HealthReporter, health: &Health) {
    let mut serving = health.serving();
    tokio::spawn(async move {
        loop {
            let status = if *serving.borrow_and_update() {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            for service in SERVICES {
                reporter.set_service_status(service, status).await;
            }
            if serving.changed().await.is_err() {
                return;
            }
        }
    });
}
