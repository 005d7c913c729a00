//! WebDataset tar shards: `<dir>/train/*.tar` and `<dir>/val/*.tar` (`test/` when there is
//! no `val/`), each sample two members that share a key, `key.jpg` (or `.jpeg`, `.png`)
//! and `key.cls` (the label as decimal text); `<dir>/classes.txt` (one name a line, as
//! `fixclf data pack` writes it) names the classes, else they are numbered.
//!
//! Shards are mapped (`memmap2`) and read through an offset index built from their headers
//! (sorted shard names, members in tar order), so a sample is one slice of the map: the
//! shuffle over all samples and the mid-epoch resume are those of image folders.
use crate::error::{Error, IoContext, Result};
use crate::vision::loader::SampleSource;
use memmap2::Mmap;
use std::borrow::Cow;
use std::path::{Path, PathBuf};

const BLOCK: usize = 512;
/// Extensions of the image member of a sample.
const IMAGE_EXTS: &[&str] = &["jpg", "jpeg", "png"];

/// One member of a tar file: its name and where its bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub offset: usize,
    pub len: usize,
}

/// The regular-file members of a tar file's bytes (ustar, GNU long names, PAX paths).
pub fn parse_tar(bytes: &[u8], path: &Path) -> Result<Vec<Member>> {
    let bad = |at: usize, msg: &str| {
        Error::bad_file(
            path,
            format!("not a valid tar file at byte {at}: {msg}; re-create the shard"),
        )
    };
    let (mut members, mut at, mut long_name) = (Vec::new(), 0usize, None::<String>);
    while at + BLOCK <= bytes.len() {
        let h = &bytes[at..at + BLOCK];
        if h.iter().all(|&b| b == 0) {
            return Ok(members);
        }
        let stored: u64 =
            octal(&h[148..156]).ok_or_else(|| bad(at, "bad header checksum field"))?;
        let sum: u64 = h
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    b as u64
                }
            })
            .sum();
        if sum != stored {
            return Err(bad(at, "header checksum mismatch"));
        }
        let size = size_field(&h[124..136]).ok_or_else(|| bad(at, "bad size field"))?;
        let data = at + BLOCK;
        let padded = size.div_ceil(BLOCK as u64).saturating_mul(BLOCK as u64);
        if padded > (bytes.len() - data) as u64 {
            return Err(bad(
                at,
                "a member runs past the end of the file (truncated)",
            ));
        }
        let (size, padded) = (size as usize, padded as usize);
        let body = &bytes[data..data + size];
        match h[156] {
            b'L' => long_name = Some(text(body)),
            b'x' => long_name = pax_path(body).or(long_name),
            b'0' | 0 | b'7' => {
                let name = long_name.take().unwrap_or_else(|| header_name(h));
                members.push(Member {
                    name,
                    offset: data,
                    len: size,
                });
            }
            _ => long_name = None,
        }
        at = data + padded;
    }
    if at == bytes.len() && at > 0 {
        return Ok(members);
    }
    Err(bad(at, "truncated (no end-of-archive blocks)"))
}

fn text(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn header_name(h: &[u8]) -> String {
    let name = text(&h[0..100]);
    if &h[257..262] == b"ustar" && h[345] != 0 {
        format!("{}/{name}", text(&h[345..500]))
    } else {
        name
    }
}

fn octal(field: &[u8]) -> Option<u64> {
    let s = text(field);
    let s = s.trim_matches(|c: char| c == ' ' || c == '\0');
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

/// A size field: octal, or GNU's base-256 (high bit set) for members over 8 GiB.
fn size_field(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        let mut v: u64 = (field[0] & 0x7f) as u64;
        for &b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(b as u64)?;
        }
        return Some(v);
    }
    octal(field)
}

/// The `path=` record of a PAX extended header.
fn pax_path(body: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(body);
    s.lines()
        .filter_map(|l| l.split_once(' ').map(|(_, kv)| kv))
        .find_map(|kv| kv.strip_prefix("path=").map(str::to_string))
}

/// One split's shards and its samples: (shard, image member, label).
pub struct ShardSet {
    shards: Vec<(PathBuf, Mmap)>,
    samples: Vec<(u32, Member, u32)>,
    classes: usize,
}

/// The (key, extension) of a member name: the key is everything up to the first dot of
/// the last path component (WebDataset's rule).
fn split_key(name: &str) -> (&str, &str) {
    let base = name.rfind('/').map_or(0, |i| i + 1);
    match name[base..].find('.') {
        Some(dot) => (&name[..base + dot], &name[base + dot + 1..]),
        None => (name, ""),
    }
}

/// The samples of one shard's members: image + `.cls` pairs by key, in tar order.
pub fn samples_of(members: &[Member], bytes: &[u8], path: &Path) -> Result<Vec<(Member, u32)>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < members.len() {
        let (key, _) = split_key(&members[i].name);
        let mut j = i;
        let (mut image, mut label) = (None, None);
        while j < members.len() && split_key(&members[j].name).0 == key {
            let m = &members[j];
            let ext = split_key(&m.name).1.to_ascii_lowercase();
            if IMAGE_EXTS.contains(&ext.as_str()) {
                image = Some(m.clone());
            } else if ext == "cls" {
                let t = text(&bytes[m.offset..m.offset + m.len]);
                label = Some(t.trim().parse::<u32>().map_err(|_| {
                    Error::bad_file(
                        path,
                        format!("{}: label {t:?} is not a class number; re-pack", m.name),
                    )
                })?);
            }
            j += 1;
        }
        match (image, label) {
            (Some(img), Some(l)) => out.push((img, l)),
            _ => {
                return Err(Error::bad_file(
                    path,
                    format!("sample {key} lacks a .jpg/.png or a .cls member; re-pack the shard"),
                ))
            }
        }
        i = j;
    }
    Ok(out)
}

/// The train and validation splits under `dir`.
pub fn open_splits(dir: &Path) -> Result<(ShardSet, ShardSet)> {
    let names = read_classes(dir)?;
    let train = open_split(&dir.join("train"), names.as_deref())?;
    let eval_dir = ["val", "test"]
        .iter()
        .map(|s| dir.join(s))
        .find(|p| p.is_dir());
    let eval_dir = eval_dir
        .ok_or_else(|| Error::bad_file(dir, "no val/ (or test/) folder of shards beside train/"))?;
    let mut eval = open_split(&eval_dir, names.as_deref())?;
    eval.classes = train.classes;
    if let Some(bad) = eval.samples.iter().find(|s| s.2 as usize >= train.classes) {
        return Err(Error::bad_file(
            &eval.shards[bad.0 as usize].0,
            format!(
                "{}: label {} but train/ has {} classes",
                bad.1.name, bad.2, train.classes
            ),
        ));
    }
    Ok((train, eval))
}

fn read_classes(dir: &Path) -> Result<Option<Vec<String>>> {
    let path = dir.join("classes.txt");
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).at(&path)?;
    Ok(Some(text.lines().map(str::to_string).collect()))
}

/// Maps every `*.tar` of `split` (sorted by name) and indexes its samples.
pub fn open_split(split: &Path, names: Option<&[String]>) -> Result<ShardSet> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(split)
        .at(split)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "tar"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(Error::bad_file(
            split,
            "no *.tar shards; make them with `fixclf data pack`",
        ));
    }
    let (mut shards, mut samples) = (Vec::new(), Vec::new());
    for (k, path) in paths.into_iter().enumerate() {
        let file = std::fs::File::open(&path).at(&path)?;
        // SAFETY: the shard is only read; a shard changed while mapped is the user's
        // error (its bytes may then change under us, never memory safety of the index).
        let map = unsafe { Mmap::map(&file) }.at(&path)?;
        let members = parse_tar(&map, &path)?;
        for (m, l) in samples_of(&members, &map, &path)? {
            samples.push((k as u32, m, l));
        }
        shards.push((path, map));
    }
    let max = samples.iter().map(|s| s.2 as usize + 1).max().unwrap_or(0);
    let classes = names.map_or(max, |n| n.len());
    if let Some(s) = samples.iter().find(|s| s.2 as usize >= classes) {
        return Err(Error::bad_file(
            &shards[s.0 as usize].0,
            format!(
                "{}: label {} but classes.txt names {classes}",
                s.1.name, s.2
            ),
        ));
    }
    Ok(ShardSet {
        shards,
        samples,
        classes,
    })
}

impl SampleSource for ShardSet {
    fn len(&self) -> usize {
        self.samples.len()
    }
    fn label(&self, i: usize) -> i64 {
        self.samples[i].2 as i64
    }
    fn name(&self, i: usize) -> PathBuf {
        let (k, m, _) = &self.samples[i];
        PathBuf::from(format!(
            "{}:{}",
            self.shards[*k as usize].0.display(),
            m.name
        ))
    }
    fn bytes(&self, i: usize) -> Result<Cow<'_, [u8]>> {
        let (k, m, _) = &self.samples[i];
        Ok(Cow::Borrowed(
            &self.shards[*k as usize].1[m.offset..m.offset + m.len],
        ))
    }
    fn classes(&self) -> usize {
        self.classes
    }
}
