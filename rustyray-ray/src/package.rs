//! Carrying the job binary to a multi-node cluster: the binary alone,
//! zipped with its executable bit, becomes a `runtime_env` working_dir
//! package named by the hash of its bytes. The cluster keeps one copy per
//! hash; the runner uploads it only when the dashboard does not have it, and
//! asks again now and then (asking pins it, so the cluster keeps it while
//! jobs use it).

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{RayError, Result};

/// A binary packaged for upload.
#[derive(Clone, Debug)]
pub(crate) struct Package {
    /// `_ray_pkg_<hash>.zip`, the name the dashboard stores it under.
    pub(crate) name: String,
    /// The binary's file name inside the package (the job's working directory).
    pub(crate) file_name: String,
    /// The zip.
    pub(crate) zip: Vec<u8>,
}

impl Package {
    /// The `runtime_env.working_dir` that unpacks it.
    pub(crate) fn uri(&self) -> String {
        format!("gcs://{}", self.name)
    }
}

/// Reads and zips `binary` (blocking: call it off the async workers).
pub(crate) fn build(binary: &Path) -> Result<Package> {
    let fail = |message: String| RayError::Binary { path: binary.display().to_string(), message };
    let bytes = std::fs::read(binary).map_err(|error| fail(format!("cannot read it: {error}")))?;
    let file_name = binary
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| fail("it has no file name in UTF-8".into()))?
        .to_string();
    let hash = Sha256::digest(&bytes);
    let hex: String = hash.iter().take(20).map(|b| format!("{b:02x}")).collect();
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::with_capacity(bytes.len() / 2)));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o755)
        .large_file(bytes.len() >= u32::MAX as usize);
    zip.start_file(file_name.as_str(), options).map_err(|error| fail(format!("cannot zip it: {error}")))?;
    zip.write_all(&bytes).map_err(|error| fail(format!("cannot zip it: {error}")))?;
    let zip = zip.finish().map_err(|error| fail(format!("cannot zip it: {error}")))?.into_inner();
    Ok(Package { name: format!("_ray_pkg_{hex}.zip"), file_name, zip })
}

/// The binary the runner starts by default: this program.
pub(crate) fn current_exe() -> Result<PathBuf> {
    std::env::current_exe().map_err(|error| RayError::Binary {
        path: "(this program)".into(),
        message: format!("cannot find this program's path: {error}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_bytes_give_the_same_package_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app");
        std::fs::write(&path, b"\x7fELF pretend").unwrap();
        let a = build(&path).unwrap();
        let b = build(&path).unwrap();
        assert_eq!(a.name, b.name);
        assert_eq!(a.file_name, "app");
        assert!(a.uri().starts_with("gcs://_ray_pkg_"));
        std::fs::write(&path, b"\x7fELF other").unwrap();
        assert_ne!(build(&path).unwrap().name, a.name);
        assert!(matches!(build(&dir.path().join("missing")), Err(RayError::Binary { .. })));
    }
}
