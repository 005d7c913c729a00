//! Small file-system helpers shared by every writer: atomic writes (temp file + rename) so
//! that an interrupted or failed write never leaves a half-written file under the final name.
use crate::error::{Error, IoContext, Result};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The temp path used while writing `path`: same folder (so rename is atomic), `.tmp` suffix.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Whether a file name is one of [`tmp_path`]'s.
pub fn is_tmp_name(name: &str) -> bool {
    name.strip_suffix(".tmp")
        .and_then(|rest| rest.rsplit_once('.'))
        .is_some_and(|(base, pid)| {
            !base.is_empty() && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())
        })
}

/// Writes a file through `write` into a temp file, fsyncs it and renames it into place.
/// On any error the temp file is removed and `path` is left as it was.
pub fn write_atomic<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
{
    let tmp = tmp_path(path);
    let result = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::new(file);
        write(&mut w)?;
        w.flush()?;
        w.get_ref().sync_all()?;
        drop(w);
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable (a power cut after a checkpoint), where the file
        // system lets a folder be opened; a process kill needs only the rename.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| Error::io(path, full_disk_hint(e)))
}

/// A full disk (or a file-size limit) says what was kept and the fix, once.
fn full_disk_hint(e: std::io::Error) -> std::io::Error {
    use std::io::ErrorKind::{FileTooLarge, StorageFull};
    if matches!(e.kind(), StorageFull | FileTooLarge) {
        let msg = format!("{e}; the previous version of the file (if any) is intact: free some space and run the command again");
        std::io::Error::new(e.kind(), msg)
    } else {
        e
    }
}

/// Writes bytes atomically.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |w| w.write_all(bytes))
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).at(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).at(path)?;
    Ok(hex(&hasher.finalize()))
}

/// SHA-256 of bytes, hex.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_leaves_no_temp_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.bin");
        let err = write_atomic(&path, |_| Err(std::io::Error::other("boom")));
        assert!(err.is_err());
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        write_bytes_atomic(&path, b"abc").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abc");
        assert_eq!(sha256_bytes(b"abc").len(), 64);
        let tmp = tmp_path(&path);
        assert!(is_tmp_name(&tmp.file_name().unwrap().to_string_lossy()));
        assert!(!is_tmp_name("x.bin") && !is_tmp_name("notes.tmp") && !is_tmp_name(".1.tmp"));
    }
}
