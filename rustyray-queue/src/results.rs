//! Where results too large for a database row are kept.
//!
//! A result whose JSON is longer than the queue's limit (64 KiB by default)
//! is written to a [`ResultStore`] and the job's row keeps the reference. The
//! default store is a directory; any other (an object store bucket, a shared
//! volume) plugs in through the trait.

use std::fmt::Debug;
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;

use crate::error::{QueueError, Result};

/// A place to put large results and read them back by reference.
pub trait ResultStore: Debug + Send + Sync + 'static {
    /// Stores `bytes` under `key` (unique per attempt) and returns a
    /// reference that [`get`](Self::get) understands.
    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> BoxFuture<'a, Result<String>>;
    /// Reads what a reference points to.
    fn get<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Vec<u8>>>;
}

/// Results as files in a directory, referenced as `file://` URLs. Every
/// process of a queue must see the same directory (a local one for SQLite;
/// a shared volume, or another store, for workers on several machines).
#[derive(Clone, Debug)]
pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    /// A store in `root`, created on first write.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirStore { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

fn io_error(what: &str, path: &Path, error: std::io::Error) -> QueueError {
    QueueError::ResultStore(format!("{what} {}: {error}", path.display()))
}

impl ResultStore for DirStore {
    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let safe: String =
                key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
            tokio::fs::create_dir_all(&self.root).await.map_err(|e| io_error("creating", &self.root, e))?;
            let path = self.root.join(format!("{safe}.json"));
            let partial = self.root.join(format!("{safe}.json.partial"));
            tokio::fs::write(&partial, bytes).await.map_err(|e| io_error("writing", &partial, e))?;
            tokio::fs::rename(&partial, &path).await.map_err(|e| io_error("renaming", &path, e))?;
            let absolute = tokio::fs::canonicalize(&path).await.map_err(|e| io_error("resolving", &path, e))?;
            Ok(format!("file://{}", absolute.display()))
        })
    }

    fn get<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Vec<u8>>> {
        Box::pin(async move {
            let Some(path) = reference.strip_prefix("file://") else {
                return Err(QueueError::ResultStore(format!("`{reference}` is not a file:// reference")));
            };
            let path = Path::new(path);
            tokio::fs::read(path).await.map_err(|e| io_error("reading", path, e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_result_goes_in_and_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore::new(dir.path().join("results"));
        let reference = store.put("job/1", b"[1,2,3]".to_vec()).await.unwrap();
        assert!(reference.starts_with("file://") && reference.ends_with("job_1.json"), "{reference}");
        assert_eq!(store.get(&reference).await.unwrap(), b"[1,2,3]");
        assert!(store.get("s3://elsewhere").await.is_err());
    }
}
