//! The bytes of uploaded files, through the `object_store` crate: a folder
//! of the data dir on the embedded default, an S3-compatible bucket in
//! production (`FILE_STORE_URL=s3://bucket/prefix`, credentials and
//! endpoint from the usual `AWS_*` variables).
//!
//! Keys: `files/<id>` for a file, `files/<id>.thumb` for its thumbnail.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::prefix::PrefixStore;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt as _, WriteMultipart};
use tokio::io::AsyncReadExt as _;

/// Parts of this size go to the store (S3 wants at least 5 MiB but the
/// last); at most two are in flight, so an upload holds ~10 MiB at most.
const PART_BYTES: usize = 5 * 1024 * 1024;

#[derive(Clone)]
pub struct Blobs {
    inner: Arc<dyn ObjectStore>,
    /// For logs: where the bytes go.
    describe: String,
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}

/// Object keys.
pub fn file_key(id: &str) -> String {
    format!("files/{id}")
}

pub fn thumbnail_key(id: &str) -> String {
    format!("files/{id}.thumb")
}

impl Blobs {
    /// `url`: `s3://bucket[/prefix]` or `file:///absolute/dir`; none: the
    /// `files` folder of `data_dir`. `options`: S3 settings by their
    /// object_store names (`aws_endpoint`, `aws_access_key_id`, ...),
    /// applied over the environment's.
    pub fn open(
        url: Option<&str>,
        data_dir: &Path,
        options: &[(String, String)],
    ) -> anyhow::Result<Blobs> {
        let Some(url) = url.filter(|u| !u.is_empty()) else {
            return Blobs::local(&data_dir.join("files"));
        };
        if let Some(dir) = url.strip_prefix("file://") {
            return Blobs::local(Path::new(dir));
        }
        let rest = url
            .strip_prefix("s3://")
            .with_context(|| format!("FILE_STORE_URL {url:?}: only s3:// and file:// are known"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        anyhow::ensure!(!bucket.is_empty(), "FILE_STORE_URL {url:?} names no bucket");
        // The HTTP client's TLS takes the process's provider: ring, the one
        // the server's own TLS uses. Installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        for (key, value) in options {
            let key: AmazonS3ConfigKey = key
                .parse()
                .with_context(|| format!("unknown S3 option {key:?}"))?;
            builder = builder.with_config(key, value);
        }
        let s3 = builder.build().context("configuring the S3 file store")?;
        let describe = format!("s3://{bucket}/{prefix}");
        let inner: Arc<dyn ObjectStore> = if prefix.trim_matches('/').is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, prefix.trim_matches('/')))
        };
        Ok(Blobs { inner, describe })
    }

    fn local(dir: &Path) -> anyhow::Result<Blobs> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let fs = LocalFileSystem::new_with_prefix(dir)
            .with_context(|| format!("opening {}", dir.display()))?;
        Ok(Blobs {
            inner: Arc::new(fs),
            describe: format!("file://{}", dir.display()),
        })
    }

    /// Stores the bytes of a local file under `key`, in parts (never whole
    /// in memory). A failure aborts the upload: nothing is left under `key`.
    pub async fn put_file(&self, key: &str, path: &Path) -> anyhow::Result<()> {
        let key = Key::from(key);
        let mut file = tokio::fs::File::open(path).await?;
        let upload = self.inner.put_multipart(&key).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match file.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e.into());
                }
            };
            if n == 0 {
                break;
            }
            if let Err(e) = writer.wait_for_capacity(2).await {
                let _ = writer.abort().await;
                return Err(e.into());
            }
            writer.write(&buf[..n]);
        }
        writer.finish().await?;
        Ok(())
    }

    /// Stores small bytes (a thumbnail) under `key`.
    pub async fn put_bytes(&self, key: &str, bytes: Bytes) -> anyhow::Result<()> {
        self.inner.put(&Key::from(key), bytes.into()).await?;
        Ok(())
    }

    /// The bytes under `key` (a byte range of them), as a stream.
    pub async fn get(
        &self,
        key: &str,
        range: Option<Range<u64>>,
    ) -> anyhow::Result<BoxStream<'static, std::io::Result<Bytes>>> {
        let options = GetOptions::new().with_range(range.map(GetRange::Bounded));
        let got = self.inner.get_opts(&Key::from(key), options).await?;
        Ok(got
            .into_stream()
            .map(|r| r.map_err(std::io::Error::other))
            .boxed())
    }

    /// All the bytes under `key` (small objects).
    pub async fn get_all(&self, key: &str) -> anyhow::Result<Bytes> {
        Ok(self.inner.get(&Key::from(key)).await?.bytes().await?)
    }

    /// Whether anything is stored under `key`.
    pub async fn exists(&self, key: &str) -> anyhow::Result<bool> {
        match self.inner.head(&Key::from(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// How many objects there are under `prefix` (tests, checks).
    pub async fn count(&self, prefix: &str) -> anyhow::Result<usize> {
        let prefix = Key::from(prefix);
        let mut listed = self.inner.list(Some(&prefix));
        let mut n = 0;
        while let Some(item) = listed.next().await {
            item?;
            n += 1;
        }
        Ok(n)
    }

    /// Removes `key`; a key that is not there is not an error.
    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        match self.inner.delete(&Key::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
