//! Attachments: uploads (from HTTP and gRPC alike), who may read a file,
//! signed URLs for `<img>` tags, and the sweep of files nobody holds.
//!
//! An upload is streamed to a temporary file (never whole in memory),
//! counted against the size limit as it arrives and digested for its ETag;
//! then its type is sniffed from the first bytes (the client's is never
//! asked), images are measured, stripped of their EXIF metadata (location
//! among it; a rotation it asked for is applied to the pixels first) and
//! given a thumbnail, and the bytes go to the object store. The row is
//! written last: a failure anywhere before leaves nothing (the temporary
//! file is removed when dropped, a stored object is deleted again).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::Semaphore;

use crate::domain::{AppError, AppResult, Attachment, new_id, now_micros, parse_id};
use crate::store::Store;
use crate::store::blobs::{Blobs, file_key, thumbnail_key};
use crate::store::files::StoredFile;

mod inspect;
mod sweep;

use inspect::examine_picture;
pub use inspect::{clean_name, sniff};

/// The limits uploads are held to.
#[derive(Clone, Debug)]
pub struct FileLimits {
    /// Bytes per file.
    pub max_file_bytes: u64,
    /// Bytes one user may upload in 24 hours.
    pub daily_bytes: u64,
    /// How long an upload no message holds is kept.
    pub keep_unattached: Duration,
    /// How long a signed URL works.
    pub url_ttl: Duration,
}

/// Files in one message.
pub const MAX_FILES_PER_MESSAGE: usize = 10;
/// File ids in one GetFileUrls.
pub const MAX_URL_IDS: usize = 100;
/// How many pictures are decoded at once (each takes a blocking thread
/// and up to width × height × 4 bytes).
const DECODERS: usize = 2;
/// Files older than `keep_unattached - ATTACH_MARGIN` cannot be attached,
/// so the sweep never removes a file a send is taking.
const ATTACH_MARGIN: Duration = Duration::from_secs(3600);

/// Which bytes of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Original,
    Thumbnail,
}

impl Variant {
    fn tag(self) -> &'static str {
        match self {
            Variant::Original => "f",
            Variant::Thumbnail => "t",
        }
    }
}

/// A signed URL of a file and its thumbnail.
#[derive(Clone, Debug)]
pub struct FileUrl {
    pub file_id: String,
    pub url: String,
    /// "" when the file has none.
    pub thumbnail_url: String,
    /// Microseconds since the epoch.
    pub expires_at: i64,
}

/// Whether browsers may show the type inline from our origin: raster
/// images only (no SVG, nothing that runs script).
pub fn is_safe_image(content_type: &str) -> bool {
    matches!(
        content_type,
        "image/png" | "image/jpeg" | "image/gif" | "image/webp"
    )
}

#[derive(Clone)]
pub struct FileService {
    store: Store,
    blobs: Blobs,
    limits: FileLimits,
    /// Where uploads are spooled while they arrive.
    spool: PathBuf,
    /// The key signed URLs are made with (derived from the JWT secret, so
    /// every node shares it).
    url_key: Arc<[u8]>,
    decoders: Arc<Semaphore>,
}

type HmacSha256 = Hmac<Sha256>;

impl FileService {
    pub fn new(
        store: Store,
        blobs: Blobs,
        limits: FileLimits,
        spool: PathBuf,
        secret: &[u8],
    ) -> anyhow::Result<FileService> {
        std::fs::create_dir_all(&spool)?;
        let mut derive = HmacSha256::new_from_slice(secret)?;
        derive.update(b"tidings file urls v1");
        let url_key: Arc<[u8]> = derive.finalize().into_bytes().to_vec().into();
        Ok(FileService {
            store,
            blobs,
            limits,
            spool,
            url_key,
            decoders: Arc::new(Semaphore::new(DECODERS)),
        })
    }

    pub fn limits(&self) -> &FileLimits {
        &self.limits
    }
    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// Stores an upload of `uploader_id`'s. `body` yields the bytes; an
    /// error from it (the client went away) ends the upload with nothing
    /// stored.
    pub async fn upload<S, E>(
        &self,
        uploader_id: &str,
        name: &str,
        body: S,
    ) -> AppResult<Attachment>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let name = clean_name(name)?;
        let day_ago = now_micros() - 24 * 3600 * 1_000_000;
        let used = u64::try_from(self.store.uploaded_since(uploader_id, day_ago).await?)
            .unwrap_or_default();
        if used >= self.limits.daily_bytes {
            return Err(over_daily(self.limits.daily_bytes));
        }

        let spooled = self.spool(body).await?;
        if spooled.size == 0 {
            return Err(AppError::invalid("data", "the file is empty"));
        }
        if used + spooled.size > self.limits.daily_bytes {
            return Err(over_daily(self.limits.daily_bytes));
        }
        let id = new_id();
        let mut content_type = sniff(&spooled.head);
        let mut size = spooled.size;
        let mut etag = spooled.digest;
        let (mut width, mut height, mut thumbnail) = (0, 0, None);
        if is_safe_image(content_type) {
            let _permit = self.decoders.acquire().await.map_err(AppError::internal)?;
            let path = spooled.path.to_path_buf();
            let picture = tokio::task::spawn_blocking(move || examine_picture(&path))
                .await
                .map_err(AppError::internal)?;
            match picture {
                Some(p) => {
                    (width, height, thumbnail) = (p.width, p.height, p.thumbnail);
                    if let Some((new_size, new_digest)) = p.rewritten {
                        size = new_size;
                        etag = new_digest;
                    }
                }
                // Says it is a picture, but none could be read: served
                // as plain bytes, as a download.
                None => content_type = "application/octet-stream",
            }
        }

        let key = file_key(&id);
        self.blobs
            .put_file(&key, &spooled.path)
            .await
            .map_err(|e| AppError::Unavailable(e.context("storing the file")))?;
        let has_thumbnail = match thumbnail {
            Some(bytes) => match self.blobs.put_bytes(&thumbnail_key(&id), bytes).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, file_id = %id, "thumbnail not stored");
                    false
                }
            },
            None => false,
        };
        let stored = StoredFile {
            attachment: Attachment {
                id: id.clone(),
                name,
                content_type: content_type.to_owned(),
                size: i64::try_from(size).unwrap_or(i64::MAX),
                width,
                height,
                has_thumbnail,
            },
            uploader_id: uploader_id.to_owned(),
            etag,
            created_at: now_micros(),
        };
        if let Err(e) = self.store.insert_file(&stored).await {
            self.remove_objects(&id).await;
            return Err(e.into());
        }
        metrics::counter!("tidings_file_uploads_total").increment(1);
        metrics::counter!("tidings_file_upload_bytes_total").increment(size);
        Ok(stored.attachment)
    }

    /// Writes `body` to a temporary file, holding it to the size limit.
    async fn spool<S, E>(&self, body: S) -> AppResult<Spooled>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let tmp = tempfile::Builder::new()
            .prefix("upload-")
            .tempfile_in(&self.spool)
            .map_err(AppError::internal)?;
        let (file, path) = tmp.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let mut hasher = Sha256::new();
        let mut head: Vec<u8> = Vec::with_capacity(SNIFF_BYTES);
        let mut size: u64 = 0;
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = chunk
                .map_err(|e| AppError::invalid("data", format!("the upload broke off: {e}")))?;
            size += chunk.len() as u64;
            if size > self.limits.max_file_bytes {
                return Err(too_large(self.limits.max_file_bytes));
            }
            if head.len() < SNIFF_BYTES {
                let take = (SNIFF_BYTES - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(AppError::internal)?;
        }
        file.flush().await.map_err(AppError::internal)?;
        Ok(Spooled {
            path,
            size,
            head,
            digest: hex::encode(&hasher.finalize()[..16]),
        })
    }

    /// The file, if `user_id` may read it (else NOT_FOUND, whether it
    /// exists or not).
    pub async fn readable(&self, user_id: &str, file_id: &str) -> AppResult<StoredFile> {
        let id = parse_id("file_id", file_id).map_err(|_| AppError::NotFound("file"))?;
        self.store
            .readable_files(user_id, &[id])
            .await?
            .into_iter()
            .next()
            .ok_or(AppError::NotFound("file"))
    }

    /// The file by id, for a request that carried a valid signature.
    pub async fn signed(&self, file_id: &str) -> AppResult<StoredFile> {
        self.store
            .file_by_id(file_id)
            .await?
            .filter(|f| f.created_at > 0)
            .ok_or(AppError::NotFound("file"))
    }

    /// Signed URLs for files `user_id` may read; NOT_FOUND naming the
    /// first id that is not one.
    pub async fn urls(&self, user_id: &str, file_ids: &[String]) -> AppResult<Vec<FileUrl>> {
        if file_ids.is_empty() {
            return Err(AppError::invalid("file_ids", "name at least one file"));
        }
        if file_ids.len() > MAX_URL_IDS {
            return Err(AppError::invalid(
                "file_ids",
                format!("at most {MAX_URL_IDS} files at once"),
            ));
        }
        let mut ids = Vec::with_capacity(file_ids.len());
        for (i, raw) in file_ids.iter().enumerate() {
            match crate::domain::canonical_id(raw) {
                Some(id) => ids.push(id.to_owned()),
                None => return Err(not_found_at(i)),
            }
        }
        let found = self.store.readable_files(user_id, &ids).await?;
        let expires_at =
            now_micros() + i64::try_from(self.limits.url_ttl.as_micros()).unwrap_or(i64::MAX / 2);
        let exp = expires_at / 1_000_000;
        let mut out = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            let Some(file) = found.iter().find(|f| &f.attachment.id == id) else {
                return Err(not_found_at(i));
            };
            out.push(FileUrl {
                file_id: id.clone(),
                url: format!(
                    "/v1/files/{id}?exp={exp}&sig={}",
                    self.sign(id, Variant::Original, exp)
                ),
                thumbnail_url: if file.attachment.has_thumbnail {
                    format!(
                        "/v1/files/{id}/thumbnail?exp={exp}&sig={}",
                        self.sign(id, Variant::Thumbnail, exp)
                    )
                } else {
                    String::new()
                },
                expires_at: exp * 1_000_000,
            });
        }
        Ok(out)
    }

    fn mac(&self, id: &str, variant: Variant, exp: i64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.url_key).expect("HMAC takes any key");
        mac.update(format!("{id}\n{}\n{exp}", variant.tag()).as_bytes());
        mac
    }

    fn sign(&self, id: &str, variant: Variant, exp: i64) -> String {
        hex::encode(self.mac(id, variant, exp).finalize().into_bytes())
    }

    /// Whether `sig` is this server's signature of the URL and `exp` (Unix
    /// seconds) has not passed.
    pub fn verify(&self, id: &str, variant: Variant, exp: i64, sig: &str) -> bool {
        if exp < now_micros() / 1_000_000 {
            return false;
        }
        let Ok(sig) = hex::decode(sig) else {
            return false;
        };
        self.mac(id, variant, exp).verify_slice(&sig).is_ok()
    }

    /// The ids of `sender_id`'s files for a message, checked: at most
    /// [`MAX_FILES_PER_MESSAGE`], each the sender's own upload, in no
    /// message yet, not about to be swept. In the order given.
    pub async fn attachable(&self, sender_id: &str, raw: &[String]) -> AppResult<Vec<Attachment>> {
        if raw.is_empty() {
            return Ok(Vec::new());
        }
        if raw.len() > MAX_FILES_PER_MESSAGE {
            return Err(AppError::invalid(
                "attachment_ids",
                format!("at most {MAX_FILES_PER_MESSAGE} files in one message"),
            ));
        }
        let mut ids: Vec<String> = Vec::with_capacity(raw.len());
        for (i, r) in raw.iter().enumerate() {
            let Some(id) = crate::domain::canonical_id(r) else {
                return Err(not_attachable(i));
            };
            if ids.iter().any(|x| x == id) {
                return Err(AppError::invalid(
                    "attachment_ids",
                    "names the same file twice",
                ));
            }
            ids.push(id.to_owned());
        }
        let window = self.limits.keep_unattached.saturating_sub(ATTACH_MARGIN);
        let since = now_micros() - i64::try_from(window.as_micros()).unwrap_or(i64::MAX / 2);
        let found = self.store.attachable_files(sender_id, &ids, since).await?;
        let mut out = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            match found.iter().find(|f| &f.attachment.id == id) {
                Some(f) => out.push(f.attachment.clone()),
                None => return Err(not_attachable(i)),
            }
        }
        Ok(out)
    }

    async fn remove_objects(&self, id: &str) {
        for key in [file_key(id), thumbnail_key(id)] {
            if let Err(e) = self.blobs.delete(&key).await {
                tracing::warn!(error = %e, key, "object not removed");
            }
        }
    }
}

/// How many first bytes the type is sniffed from.
const SNIFF_BYTES: usize = 8192;
struct Spooled {
    /// Removed when dropped.
    path: tempfile::TempPath,
    size: u64,
    head: Vec<u8>,
    digest: String,
}

/// The refusal of a file over `max` bytes (also HTTP's, before reading).
pub fn too_large(max: u64) -> AppError {
    AppError::ResourceExhausted(format!(
        "the file is too large: at most {} bytes ({} MiB)",
        max,
        max / (1024 * 1024)
    ))
}

fn over_daily(max: u64) -> AppError {
    AppError::ResourceExhausted(format!(
        "upload quota reached: at most {} MiB a day",
        max / (1024 * 1024)
    ))
}

fn not_attachable(i: usize) -> AppError {
    AppError::NotFoundAt {
        what: "file",
        field: format!("attachment_ids[{i}]"),
        description: "no such file of yours, or it is in a message already",
    }
}

fn not_found_at(i: usize) -> AppError {
    AppError::NotFoundAt {
        what: "file",
        field: format!("file_ids[{i}]"),
        description: "no such file, or not in a chat of yours",
    }
}
