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

/// Removes the temp files of `path` ([`tmp_path`]) left by processes that no longer run (a
/// kill between a temp file's creation and its rename), so that a large one (an embedding
/// matrix) does not take the disk space its replacement needs. A live process's temp file
/// (another writer of the same file) is left alone.
fn remove_dead_temps(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = format!("{}.", name.to_string_lossy());
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let pid = file
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".tmp"))
            .and_then(|pid| pid.parse::<i32>().ok())
            .filter(|&pid| pid > 0 && pid as u32 != std::process::id());
        if pid.is_some_and(|pid| !process_exists(pid)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether a process `pid` exists (signal 0 checks without sending anything; a process of
/// another user answers EPERM, and exists).
fn process_exists(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks the target.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Writes a file through `write` into a temp file, fsyncs it and renames it into place.
/// On any error the temp file is removed and `path` is left as it was.
pub fn write_atomic<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
{
    let mut files = StagedFiles::default();
    files.write(path, write)?;
    files.commit()
}

/// Files that belong together (embeddings: `.npy`, `.vocab` and the `.json` that records
/// their hashes), each written to its temp file first and renamed into place only once all
/// were written: a write that fails (a full disk) leaves every previous file as it was.
/// Temp files not committed are removed when this is dropped.
#[derive(Default)]
pub struct StagedFiles {
    /// (temp file, final path), in the order written.
    staged: Vec<(PathBuf, PathBuf)>,
}

impl StagedFiles {
    /// Writes `path`'s content through `write` into its temp file and fsyncs it.
    pub fn write<F>(&mut self, path: &Path, write: F) -> Result<()>
    where
        F: FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
    {
        remove_dead_temps(path);
        let tmp = tmp_path(path);
        let result = (|| {
            let file = std::fs::File::create(&tmp)?;
            let mut w = std::io::BufWriter::new(file);
            write(&mut w)?;
            w.flush()?;
            w.get_ref().sync_all()
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io(path, full_disk_hint(e)));
        }
        self.staged.push((tmp, path.to_path_buf()));
        Ok(())
    }

    /// Where `path`'s new content waits until [`commit`](Self::commit) (to hash it first).
    pub fn staged_path(&self, path: &Path) -> Option<&Path> {
        self.staged
            .iter()
            .find(|(_, p)| p == path)
            .map(|(tmp, _)| tmp.as_path())
    }

    /// Renames every file into place, in the order written, and makes the renames durable
    /// (a power cut after a checkpoint) where the file system lets a folder be opened.
    pub fn commit(mut self) -> Result<()> {
        while !self.staged.is_empty() {
            // Those not renamed yet stay in the list: dropping it removes them.
            let (tmp, path) = self.staged.remove(0);
            if let Err(e) = std::fs::rename(&tmp, &path) {
                let _ = std::fs::remove_file(&tmp);
                return Err(Error::io(&path, e));
            }
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                if let Ok(d) = std::fs::File::open(dir) {
                    let _ = d.sync_all();
                }
            }
        }
        Ok(())
    }
}

impl Drop for StagedFiles {
    fn drop(&mut self) {
        for (tmp, _) in &self.staged {
            let _ = std::fs::remove_file(tmp);
        }
    }
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

    /// A temp file of the same file from a process that has ended is removed by the next
    /// write; a live process's, and other files' temps, are not.
    #[test]
    fn a_dead_writers_temp_is_removed_by_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.npy");
        // Above any pid_max (2^22): no such process.
        let dead = dir.path().join("w.npy.999999999.tmp");
        // The process that started the tests runs.
        let live = dir
            .path()
            .join(format!("w.npy.{}.tmp", std::os::unix::process::parent_id()));
        let other = dir.path().join("w.vocab.999999999.tmp");
        let user = dir.path().join("w.npy.notes.tmp");
        for f in [&dead, &live, &other, &user] {
            std::fs::write(f, b"x").unwrap();
        }
        write_bytes_atomic(&path, b"new").unwrap();
        assert!(!dead.exists());
        assert!(live.exists() && other.exists() && user.exists());
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
    }

    /// Staged files replace the old ones together, or not at all.
    #[test]
    fn staged_files_are_replaced_together_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        write_bytes_atomic(&a, b"old a").unwrap();
        write_bytes_atomic(&b, b"old b").unwrap();
        // The second write fails: the first, already written, is not renamed.
        let mut files = StagedFiles::default();
        files.write(&a, |w| w.write_all(b"new a")).unwrap();
        assert_eq!(
            std::fs::read(files.staged_path(&a).unwrap()).unwrap(),
            b"new a"
        );
        let err = files.write(&b, |_| Err(std::io::Error::other("boom")));
        assert!(err.unwrap_err().to_string().contains("boom"));
        drop(files);
        assert_eq!(std::fs::read(&a).unwrap(), b"old a");
        assert_eq!(std::fs::read(&b).unwrap(), b"old b");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            2,
            "temp files left"
        );
        // Both written: both replaced on commit.
        let mut files = StagedFiles::default();
        files.write(&a, |w| w.write_all(b"new a")).unwrap();
        files.write(&b, |w| w.write_all(b"new b")).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), b"old a");
        files.commit().unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), b"new a");
        assert_eq!(std::fs::read(&b).unwrap(), b"new b");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            2,
            "temp files left"
        );
    }
}
