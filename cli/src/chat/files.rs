//! `/upload PATH [caption]` and `/files N`: sending a file, and the download
//! URLs of a message's files.
//!
//! The upload goes over native gRPC (`FilesService.UploadFile`, client
//! streaming), read from disk a chunk at a time, so a large file is never
//! held whole in memory. The stored file then goes out as a message with
//! `attachment_ids`, through the same outbox (and idempotency key) as any
//! typed message, so it is sent once even when the stream breaks.

use std::path::Path;

use tidings_proto::{Attachment, GetFileUrlsRequest, UploadFileRequest};
use tokio::io::AsyncReadExt as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::Room;
use crate::api::{Api, call};
use crate::format::{escape, file_size};

/// The server takes at most 1 MiB per frame; smaller frames keep memory low.
const CHUNK: usize = 256 * 1024;

/// `/upload` arguments: a path (in double quotes when it has spaces), then
/// an optional caption.
pub(super) fn path_and_caption(args: &str) -> Option<(&str, &str)> {
    let args = args.trim();
    let (path, rest) = if let Some(quoted) = args.strip_prefix('"') {
        let end = quoted.find('"')?;
        (&quoted[..end], &quoted[end + 1..])
    } else {
        args.split_once(char::is_whitespace).unwrap_or((args, ""))
    };
    (!path.is_empty()).then_some((path, rest.trim()))
}

/// Streams the file at `path` to the server; the stored file, or why not.
pub async fn upload(api: &mut Api, path: &Path) -> Result<Attachment, String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| format!("{} names no file", path.display()))?;
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let (tx, rx) = mpsc::channel::<UploadFileRequest>(4);
    let shown = path.display().to_string();
    // Reads ahead of the call at most a few chunks; a read error ends the
    // stream early, which the server refuses (nothing stored), and is told.
    let reader = tokio::spawn(async move {
        let mut first = Some(name);
        loop {
            let mut buf = vec![0; CHUNK];
            let n = match file.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => return Err(format!("reading {shown} failed: {e}")),
            };
            if n == 0 && first.is_none() {
                return Ok(());
            }
            buf.truncate(n);
            let frame = UploadFileRequest {
                name: first.take().unwrap_or_default(),
                data: buf,
            };
            if tx.send(frame).await.is_err() || n == 0 {
                return Ok(());
            }
        }
    });
    let reply = call(api.files.upload_file(ReceiverStream::new(rx))).await;
    if let Ok(Err(e)) = reader.await {
        return Err(e);
    }
    let reply = reply.map_err(|e| e.to_string())?;
    reply
        .file
        .ok_or_else(|| "the server answered without the stored file".to_owned())
}

impl Room {
    /// `/upload`: uploads, then sends the file (with the caption, if any).
    /// Returns the attachment id to send, or None after saying why not.
    pub(super) async fn upload_file(&mut self, api: &mut Api, path: &str) -> Option<String> {
        self.ui.print(format!("· uploading {}…", escape(path)));
        match upload(api, Path::new(path)).await {
            Ok(file) => {
                self.ui.print(format!(
                    "· uploaded {} ({}, {})",
                    escape(&file.name),
                    file.content_type,
                    file_size(file.size)
                ));
                Some(file.id)
            }
            Err(why) => {
                self.ui.print(format!("· not sent: {why}"));
                None
            }
        }
    }

    /// `/files N`: signed download URLs (valid for a few minutes, usable
    /// from a browser or `curl` without a token) for message #N's files.
    pub(super) async fn show_file_urls(&mut self, api: &mut Api, seq: i64) {
        let Some(files) = self.files.get(&seq).cloned() else {
            self.ui
                .print(format!("· message #{seq} has no files shown here"));
            return;
        };
        let request = GetFileUrlsRequest {
            file_ids: files.iter().map(|f| f.id.clone()).collect(),
        };
        match call(api.files.get_file_urls(request)).await {
            Ok(reply) => {
                for u in reply.urls {
                    let name = files
                        .iter()
                        .find(|f| f.id == u.file_id)
                        .map_or("?", |f| f.name.as_str());
                    self.ui.print(format!(
                        "· {}: {}",
                        escape(name),
                        absolute(&api.server, &u.url)
                    ));
                }
            }
            Err(err) => self
                .ui
                .print(format!("· could not get the download URLs: {err}")),
        }
    }
}

/// The server's URL path `url` as an absolute URL (the server may be saved
/// as `host:port`, which the channel reads as plain http).
pub fn absolute(server: &str, url: &str) -> String {
    let base = server.trim_end_matches('/');
    if base.contains("://") {
        format!("{base}{url}")
    } else {
        format!("http://{base}{url}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_comes_first_quoted_when_it_has_spaces() {
        assert_eq!(path_and_caption("a.png"), Some(("a.png", "")));
        assert_eq!(
            path_and_caption("/tmp/a.png  look at this"),
            Some(("/tmp/a.png", "look at this"))
        );
        assert_eq!(
            path_and_caption("\"my file.pdf\" the report"),
            Some(("my file.pdf", "the report"))
        );
        assert_eq!(path_and_caption("\"unclosed"), None);
        assert_eq!(path_and_caption("  "), None);
        assert_eq!(path_and_caption("\"\" x"), None);
    }

    #[test]
    fn urls_are_made_absolute_on_the_saved_server() {
        assert_eq!(
            absolute("127.0.0.1:8080", "/v1/files/x?sig=1"),
            "http://127.0.0.1:8080/v1/files/x?sig=1"
        );
        assert_eq!(
            absolute("https://chat.example/", "/v1/files/x"),
            "https://chat.example/v1/files/x"
        );
    }
}
