//! The sweep: files no message holds go, object first, then row.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::FileService;
use crate::domain::{AppResult, now_micros};
use crate::store::blobs::{file_key, thumbnail_key};

impl FileService {
    /// Removes files no message holds: released ones (their message was
    /// deleted) and uploads older than the keep time. Object first, then
    /// the row, so a crash in between leaves a row the next sweep takes.
    /// Returns how many went.
    pub async fn sweep(&self) -> AppResult<usize> {
        let keep = i64::try_from(self.limits.keep_unattached.as_micros()).unwrap_or(i64::MAX / 2);
        self.sweep_before(now_micros() - keep).await
    }

    /// The files of deleted messages, now (the sweep would take them too).
    pub async fn sweep_released(&self) -> AppResult<usize> {
        self.sweep_before(1).await
    }

    async fn sweep_before(&self, before: i64) -> AppResult<usize> {
        let mut removed = 0;
        loop {
            let batch = self.store.garbage_files(before, 100).await?;
            if batch.is_empty() {
                return Ok(removed);
            }
            let mut gone = Vec::with_capacity(batch.len());
            for f in &batch {
                let id = &f.attachment.id;
                let objects = [
                    self.blobs.delete(&file_key(id)).await,
                    self.blobs.delete(&thumbnail_key(id)).await,
                ];
                match objects.into_iter().find_map(Result::err) {
                    None => gone.push(id.clone()),
                    Some(e) => {
                        tracing::warn!(error = %e, file_id = %id, "file not removed, kept for the next sweep");
                    }
                }
            }
            if gone.is_empty() {
                return Ok(removed);
            }
            removed += usize::try_from(self.store.delete_file_rows(&gone).await?).unwrap_or(0);
            metrics::counter!("tidings_files_swept_total").increment(gone.len() as u64);
            if batch.len() < 100 {
                return Ok(removed);
            }
        }
    }

    /// Sweeps every `every` until `shutdown`.
    pub fn spawn_sweeper(&self, every: Duration, shutdown: CancellationToken) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                if let Err(e) = this.sweep().await {
                    tracing::warn!(error = %e, "file sweep failed");
                }
            }
        });
    }
}
