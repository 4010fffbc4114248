//! FilesService: uploads for native clients (client streaming: the bytes
//! arrive frame by frame and go to storage as they come, as over HTTP;
//! unary chunks would need an upload session kept between calls, on every
//! node), and signed URLs.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use tidings_proto::{self as proto, files_service_server::FilesService};
use tonic::{Request, Response, Status, Streaming};

use super::auth::Authenticator;
use super::convert;
use super::status::reply;
use crate::domain::AppError;
use crate::services::files::FileService;

/// How long an upload may send nothing before it is given up.
const UPLOAD_IDLE: Duration = Duration::from_secs(30);
/// Largest frame: 1 MiB of data and the name.
pub const MAX_UPLOAD_FRAME: usize = 1024 * 1024 + 4096;

pub struct Files {
    pub files: FileService,
    pub auth: Authenticator,
}

/// The bytes of an upload: the first frame's, then each later frame's
/// (empty ones skipped); a later frame that names the file again, a broken
/// stream or 30 s of silence ends it with an error.
fn file_bytes(
    first: Vec<u8>,
    frames: Streaming<proto::UploadFileRequest>,
) -> BoxStream<'static, Result<Bytes, String>> {
    let rest = futures::stream::unfold(frames, |mut frames| async move {
        let next = match tokio::time::timeout(UPLOAD_IDLE, frames.next()).await {
            Ok(Some(Ok(f))) if !f.name.is_empty() => {
                Err("only the first frame names the file".to_owned())
            }
            Ok(Some(Ok(f))) => Ok(Bytes::from(f.data)),
            Ok(Some(Err(status))) => Err(status.message().to_owned()),
            Ok(None) => return None,
            Err(_) => Err("nothing arrived for 30 s".to_owned()),
        };
        Some((next, frames))
    });
    futures::stream::once(async move { Ok(Bytes::from(first)) })
        .chain(rest)
        .filter(|chunk| std::future::ready(!matches!(chunk, Ok(b) if b.is_empty())))
        .boxed()
}

#[tonic::async_trait]
impl FilesService for Files {
    #[tracing::instrument(skip_all, fields(rpc = "UploadFile", user_id = tracing::field::Empty))]
    async fn upload_file(
        &self,
        request: Request<Streaming<proto::UploadFileRequest>>,
    ) -> Result<Response<proto::UploadFileResponse>, Status> {
        let caller = self.auth.caller(&request).await?;
        let mut frames = request.into_inner();
        let first = match tokio::time::timeout(UPLOAD_IDLE, frames.next()).await {
            Ok(Some(Ok(f))) => f,
            Ok(Some(Err(status))) => return Err(status),
            Ok(None) => {
                return Err(AppError::invalid("data", "the upload sent no frame").into());
            }
            Err(_) => return Err(Status::deadline_exceeded("nothing arrived for 30 s")),
        };
        let name = first.name;
        let body = file_bytes(first.data, frames);
        let result = self.files.upload(&caller.user_id, &name, body).await;
        reply(result, |file| proto::UploadFileResponse {
            file: Some(convert::attachment(file)),
        })
    }

    #[tracing::instrument(skip_all, fields(rpc = "GetFileUrls", user_id = tracing::field::Empty))]
    async fn get_file_urls(
        &self,
        request: Request<proto::GetFileUrlsRequest>,
    ) -> Result<Response<proto::GetFileUrlsResponse>, Status> {
        let caller = self.auth.caller(&request).await?;
        let r = request.into_inner();
        let result = self.files.urls(&caller.user_id, &r.file_ids).await;
        reply(result, |urls| proto::GetFileUrlsResponse {
            urls: urls
                .into_iter()
                .map(|u| proto::FileUrl {
                    file_id: u.file_id,
                    url: u.url,
                    thumbnail_url: u.thumbnail_url,
                    expires_at: Some(convert::timestamp_micros(u.expires_at)),
                })
                .collect(),
        })
    }
}
