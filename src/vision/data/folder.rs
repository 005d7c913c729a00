//! torchvision's `ImageFolder` layout, `<dir>/train/<class>/**/<file>` and
//! `<dir>/val/<class>/**/<file>` (`test/` when there is no `val/`), listed in its order:
//! class folders sorted (their index is the label), and in each, the folders of `os.walk`
//! sorted by path and their files sorted by name, keeping the extensions torchvision keeps
//! (the format itself comes from the magic bytes when a file is read).
//!
//! Listing ImageNet-sized folders is slow on network file systems, so the listing is cached
//! in an index file beside the data (`<dir>/.fixclf-index-<split>.json`; in
//! `~/.cache/fixclf/index/` when the data's folder is read-only). The index keeps every
//! listed folder's modification time: a file added, removed or renamed changes its folder's,
//! so the index is used only while every folder's time (and the list of class folders) is
//! unchanged, and rebuilt otherwise.
use crate::error::{Error, IoContext, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// torchvision's `IMG_EXTENSIONS`, compared lower-cased.
pub const IMG_EXTENSIONS: &[&str] = &[
    ".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp",
];

/// One split's files: paths relative to `root`, labels index `classes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileList {
    pub root: PathBuf,
    pub classes: Vec<String>,
    pub files: Vec<String>,
    pub labels: Vec<u32>,
}

impl FileList {
    pub fn len(&self) -> usize {
        self.files.len()
    }
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
    pub fn path(&self, i: usize) -> PathBuf {
        self.root.join(&self.files[i])
    }
}

/// The cached listing and what it was checked against.
#[derive(Debug, Serialize, Deserialize)]
struct Index {
    version: u32,
    list: FileList,
    /// Every listed folder (relative to `list.root`, "" for the class folders' parent) and
    /// its modification time in nanoseconds.
    dirs: Vec<(String, u128)>,
}

const INDEX_VERSION: u32 = 1;

/// The split folders of `dir`: `train/` and `val/` (else `test/`).
pub fn split_dirs(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let train = dir.join("train");
    if !train.is_dir() {
        return Err(Error::bad_file(
            dir,
            "no train/ folder; an image folder holds train/<class>/<images> and \
             val/<class>/<images> (vision.data.dir)",
        ));
    }
    let eval = ["val", "test"]
        .iter()
        .map(|s| dir.join(s))
        .find(|p| p.is_dir())
        .ok_or_else(|| {
            Error::bad_file(
                dir,
                "no val/ (or test/) folder beside train/; add val/<class>/<images>",
            )
        })?;
    Ok((train, eval))
}

/// The listing of `split` (a folder of class folders), from its index when that is still
/// true, else listed anew (and the index written); `classes`: the training split's, to
/// label another split by (its class folders must be among them).
pub fn list_split(split: &Path, classes: Option<&[String]>) -> Result<FileList> {
    let places = index_places(split);
    for place in &places {
        if let Some(list) = read_index(place, split) {
            return relabel(list, classes, split);
        }
    }
    let (list, dirs) = scan(split)?;
    let index = Index {
        version: INDEX_VERSION,
        list,
        dirs,
    };
    let json = serde_json::to_vec(&index).expect("an index serializes");
    // Beside the data if writable, else in the cache folder; an index that cannot be
    // written anywhere only costs the next run a listing.
    for place in &places {
        if let Some(parent) = place.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        if crate::fsutil::write_bytes_atomic(place, &json).is_ok() {
            break;
        }
    }
    relabel(index.list, classes, split)
}

/// Where the index of `split` may be: beside the data, then the cache folder.
fn index_places(split: &Path) -> Vec<PathBuf> {
    let abs = std::fs::canonicalize(split).unwrap_or_else(|_| split.to_path_buf());
    let name = abs.file_name().map(|n| n.to_string_lossy().to_string());
    let name = name.unwrap_or_else(|| "split".into());
    let mut places = Vec::new();
    if let Some(parent) = abs.parent() {
        places.push(parent.join(format!(".fixclf-index-{name}.json")));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    if let Some(cache) = cache {
        let key = crate::fsutil::sha256_bytes(abs.to_string_lossy().as_bytes());
        places.push(
            cache
                .join("fixclf/index")
                .join(format!("{}-{name}.json", &key[..16])),
        );
    }
    places
}

/// The index at `place` if it lists `split` and every folder it lists is unchanged.
fn read_index(place: &Path, split: &Path) -> Option<FileList> {
    let bytes = std::fs::read(place).ok()?;
    let mut index: Index = serde_json::from_slice(&bytes).ok()?;
    if index.version != INDEX_VERSION {
        return None;
    }
    // The index's place names its folder; the path it was listed by may differ (relative).
    index.list.root = split.to_path_buf();
    let l = &index.list;
    let classes = l.classes.len();
    if l.files.len() != l.labels.len() || l.labels.iter().any(|&x| x as usize >= classes) {
        return None;
    }
    if class_dirs(split).ok()? != index.list.classes {
        return None;
    }
    for (dir, mtime) in &index.dirs {
        if mtime_ns(&split.join(dir)).ok()? != *mtime {
            return None;
        }
    }
    Some(index.list)
}

fn mtime_ns(path: &Path) -> std::io::Result<u128> {
    let t = std::fs::metadata(path)?.modified()?;
    Ok(t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos()))
}

/// torchvision's `find_classes`: the sorted names of the folders (symbolic links followed).
fn class_dirs(split: &Path) -> Result<Vec<String>> {
    let mut classes = Vec::new();
    for entry in std::fs::read_dir(split).at(split)? {
        let entry = entry.at(split)?;
        if entry.path().is_dir() {
            classes.push(utf8_name(&entry.path())?);
        }
    }
    classes.sort();
    if classes.is_empty() {
        return Err(Error::bad_file(
            split,
            "no class folders; put each class's images in a folder of its own",
        ));
    }
    Ok(classes)
}

fn utf8_name(path: &Path) -> Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| Error::bad_file(path, "name is not UTF-8; rename it"))
}

fn is_image_name(name: &str) -> bool {
    let lower = name.to_lowercase();
    IMG_EXTENSIONS.iter().any(|e| lower.ends_with(e))
}

/// Lists `split` in torchvision's order; returns the list and every folder's time.
fn scan(split: &Path) -> Result<(FileList, Vec<(String, u128)>)> {
    let classes = class_dirs(split)?;
    let mut dirs = vec![(String::new(), mtime_ns(split).at(split)?)];
    let (mut files, mut labels) = (Vec::new(), Vec::new());
    for (label, class) in classes.iter().enumerate() {
        // os.walk's folders (links followed), sorted by path; in each, its files sorted.
        let mut walk = vec![class.clone()];
        let mut i = 0;
        while i < walk.len() {
            let rel = walk[i].clone();
            let full = split.join(&rel);
            for entry in std::fs::read_dir(&full).at(&full)? {
                let path = entry.at(&full)?.path();
                let name = utf8_name(&path)?;
                if path.is_dir() {
                    walk.push(format!("{rel}/{name}"));
                }
            }
            i += 1;
        }
        walk.sort();
        let before = files.len();
        for rel in walk {
            let full = split.join(&rel);
            dirs.push((rel.clone(), mtime_ns(&full).at(&full)?));
            let mut names = Vec::new();
            for entry in std::fs::read_dir(&full).at(&full)? {
                let path = entry.at(&full)?.path();
                let name = utf8_name(&path)?;
                if !path.is_dir() && is_image_name(&name) {
                    names.push(name);
                }
            }
            names.sort();
            files.extend(names.into_iter().map(|n| format!("{rel}/{n}")));
        }
        if files.len() == before {
            return Err(Error::bad_file(
                split.join(class),
                format!(
                    "no image files in the class folder (torchvision keeps {}); add some or \
                     remove the folder",
                    IMG_EXTENSIONS.join(" ")
                ),
            ));
        }
        labels.resize(files.len(), label as u32);
    }
    let list = FileList {
        root: split.to_path_buf(),
        classes,
        files,
        labels,
    };
    Ok((list, dirs))
}

/// Labels a split by the training split's classes (torchvision would number a validation
/// folder that lacks a class differently: here every name keeps its training label).
fn relabel(mut list: FileList, classes: Option<&[String]>, split: &Path) -> Result<FileList> {
    let Some(train) = classes else {
        return Ok(list);
    };
    let mut map = Vec::with_capacity(list.classes.len());
    for name in &list.classes {
        let Ok(at) = train.binary_search(name) else {
            return Err(Error::bad_file(
                split.join(name),
                "a class folder that train/ does not have; add it to train/ or remove it",
            ));
        };
        map.push(at as u32);
    }
    for l in &mut list.labels {
        *l = map[*l as usize];
    }
    list.classes = train.to_vec();
    Ok(list)
}

impl crate::vision::loader::SampleSource for FileList {
    fn len(&self) -> usize {
        self.files.len()
    }
    fn label(&self, i: usize) -> i64 {
        self.labels[i] as i64
    }
    fn name(&self, i: usize) -> PathBuf {
        self.path(i)
    }
    fn bytes(&self, i: usize) -> Result<std::borrow::Cow<'_, [u8]>> {
        let path = self.path(i);
        Ok(std::fs::read(&path).at(&path)?.into())
    }
    fn classes(&self) -> usize {
        self.classes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }

    #[test]
    fn torchvision_order_labels_and_extensions() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("train");
        for f in [
            "b/2.jpg",
            "b/10.JPEG",
            "a/z.png",
            "a/sub/y.jpg",
            "a/sub-x/w.jpg",
            "a/notes.txt",
            "c/x.webp",
        ] {
            touch(&t.join(f));
        }
        let list = list_split(&t, None).unwrap();
        assert_eq!(list.classes, vec!["a", "b", "c"]);
        assert_eq!(
            list.files,
            // Python sorts the folder "a/sub" before "a/sub-x" (a prefix first), but
            // "a/sub-x" before "a/sub/deeper" ('-' < '/').
            vec![
                "a/z.png",
                "a/sub/y.jpg",
                "a/sub-x/w.jpg",
                "b/10.JPEG",
                "b/2.jpg",
                "c/x.webp"
            ]
        );
        assert_eq!(list.labels, vec![0, 0, 0, 1, 1, 2]);
        // The index is written beside the split and used while the folders are unchanged.
        let index = dir.path().join(".fixclf-index-train.json");
        assert!(index.is_file());
        assert_eq!(list_split(&t, None).unwrap(), list);
        // A new file changes its folder's time: the index is rebuilt.
        std::thread::sleep(std::time::Duration::from_millis(20));
        touch(&t.join("b/3.jpg"));
        let again = list_split(&t, None).unwrap();
        assert_eq!(again.len(), 7);
        assert_eq!(again.files[4], "b/2.jpg");
        assert_eq!(again.files[5], "b/3.jpg");
    }

    #[test]
    fn validation_is_labelled_by_training_classes() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "train/a/1.jpg",
            "train/b/1.jpg",
            "train/c/1.jpg",
            "val/b/1.jpg",
            "val/c/2.jpg",
        ] {
            touch(&dir.path().join(f));
        }
        let (train, val) = split_dirs(dir.path()).unwrap();
        let tl = list_split(&train, None).unwrap();
        let vl = list_split(&val, Some(&tl.classes)).unwrap();
        assert_eq!(vl.labels, vec![1, 2]);
        touch(&dir.path().join("val/d/1.jpg"));
        let msg = list_split(&val, Some(&tl.classes)).unwrap_err().to_string();
        assert!(
            msg.contains("val/d") && msg.contains("train/ does not have"),
            "{msg}"
        );
    }

    #[test]
    fn missing_and_empty_folders_are_one_line_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(split_dirs(dir.path())
            .unwrap_err()
            .to_string()
            .contains("no train/"));
        touch(&dir.path().join("train/a/1.txt"));
        let msg = list_split(&dir.path().join("train"), None)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("train/a") && msg.contains("no image files"),
            "{msg}"
        );
    }
}
