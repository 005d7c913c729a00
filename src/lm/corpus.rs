//! The corpus pipeline: a word-level vocabulary (the `tokenizers` WordLevel model, whitespace
//! split, `<eos>` appended to every line), token ids cached as flat little-endian u32 files
//! read back with `memmap2`, and the batching of PyTorch's word_language_model example.
//!
//! Ids follow the order of first appearance over the files given to [`Vocab::build`]
//! (train, valid, test), exactly like the example's `Dictionary`, so a checkpoint's rows line
//! up with a PyTorch model built from the same files.
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{sha256_bytes, sha256_file, write_atomic};
use sha2::Digest;
use std::collections::HashMap;
use std::io::Write;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
use tokenizers::Tokenizer;

pub const EOS: &str = "<eos>";
pub const UNK: &str = "<unk>";

/// A word-level vocabulary backed by a `tokenizers` WordLevel tokenizer.
pub struct Vocab {
    tokenizer: Tokenizer,
    words: Vec<String>,
    ids: HashMap<String, u32>,
    /// SHA-256 of the tokenizer JSON: part of every token cache key.
    hash: String,
}

impl std::fmt::Debug for Vocab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Vocab({} words)", self.words.len())
    }
}

impl Vocab {
    /// Builds the vocabulary of `files`, words in order of first appearance.
    pub fn build(files: &[&Path]) -> Result<Vocab> {
        let mut words: Vec<String> = Vec::new();
        let mut ids: HashMap<String, u32> = HashMap::new();
        for &path in files {
            let text = read_corpus_text(path)?;
            for line in text.lines() {
                for word in line.split_whitespace().chain(std::iter::once(EOS)) {
                    if !ids.contains_key(word) {
                        ids.insert(word.to_string(), words.len() as u32);
                        words.push(word.to_string());
                    }
                }
            }
        }
        Self::from_words(words)
    }

    /// A vocabulary with exactly these words, in this order.
    pub fn from_words(words: Vec<String>) -> Result<Vocab> {
        let map: ahash::AHashMap<String, u32> = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i as u32))
            .collect();
        if map.len() != words.len() {
            return Err(Error::arg("vocabulary", "duplicate words"));
        }
        let mut builder = WordLevel::builder().vocab(map);
        // Unknown words map to <unk> when the vocabulary has it (WikiText, PTB); otherwise
        // encoding reports them as an error.
        builder = builder.unk_token(UNK.to_string());
        let model = builder
            .build()
            .map_err(|e| Error::arg("vocabulary", e.to_string()))?;
        let mut tokenizer = Tokenizer::new(model);
        tokenizer.with_pre_tokenizer(Some(WhitespaceSplit));
        Self::from_tokenizer(tokenizer, Path::new("<built>"))
    }

    fn from_tokenizer(tokenizer: Tokenizer, origin: &Path) -> Result<Vocab> {
        let mut pairs: Vec<(String, u32)> = tokenizer.get_vocab(false).into_iter().collect();
        pairs.sort_by_key(|(_, id)| *id);
        if pairs.is_empty() {
            return Err(Error::bad_file(
                origin,
                "the tokenizer has an empty vocabulary",
            ));
        }
        if let Some((pos, (w, id))) = pairs
            .iter()
            .enumerate()
            .find(|(pos, (_, id))| *id as usize != *pos)
        {
            return Err(Error::bad_file(
                origin,
                format!("vocabulary ids are not contiguous: `{w}` has id {id} at position {pos}"),
            ));
        }
        let json = tokenizer
            .to_string(false)
            .map_err(|e| Error::bad_file(origin, e.to_string()))?;
        let words: Vec<String> = pairs.into_iter().map(|(w, _)| w).collect();
        let ids = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i as u32))
            .collect();
        Ok(Vocab {
            tokenizer,
            words,
            ids,
            hash: sha256_bytes(json.as_bytes()),
        })
    }

    /// Loads a `tokenizer.json` written by [`Vocab::save`] (or any WordLevel tokenizer).
    pub fn load(path: &Path) -> Result<Vocab> {
        if !path.exists() {
            return Err(Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such tokenizer file"),
            ));
        }
        let bytes = std::fs::read(path).at(path)?;
        Self::from_json_bytes(&bytes, path)
    }

    /// Parses a `tokenizer.json` from its bytes; `path` names the file in errors.
    pub fn from_json_bytes(bytes: &[u8], path: &Path) -> Result<Vocab> {
        // JSON first, strings decoded (a `Value`, not `IgnoredAny`, which lets a bad `\u`
        // escape through): tokenizers 0.22 panics (`expect("Helper")`) on a JSON error
        // inside the `decoder` object instead of returning it (found by fuzz/ `tokenizer`).
        if let Err(e) = serde_json::from_slice::<serde_json::Value>(bytes) {
            return Err(Error::bad_file(
                path,
                format!(
                    "not a readable tokenizer.json (invalid JSON: {e}); delete it to rebuild \
                     the vocabulary from the corpus"
                ),
            ));
        }
        let tokenizer = Tokenizer::from_bytes(bytes).map_err(|e| {
            Error::bad_file(
                path,
                format!(
                    "not a readable tokenizer.json ({}); delete it to rebuild the vocabulary \
                     from the corpus",
                    one_line(&e.to_string())
                ),
            )
        })?;
        Self::from_tokenizer(tokenizer, path)
    }

    /// Saves the tokenizer as JSON, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = self
            .tokenizer
            .to_string(true)
            .map_err(|e| Error::bad_file(path, e.to_string()))?;
        write_atomic(path, |w| w.write_all(json.as_bytes()))
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The words in id order.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    pub fn id(&self, word: &str) -> Option<u32> {
        self.ids.get(word).copied()
    }

    /// SHA-256 of the tokenizer's JSON.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Encodes a text (one sentence or paragraph a line, `<eos>` appended to each) with the
    /// tokenizer. Words outside the vocabulary become `<unk>` when it exists, else an error
    /// naming how many and the first few.
    pub fn encode_text(&self, text: &str, origin: &Path) -> Result<Vec<u32>> {
        let eos = self.id(EOS).ok_or_else(|| {
            Error::bad_file(origin, format!("the vocabulary has no `{EOS}` token"))
        })?;
        let unk = self.id(UNK);
        let lines: Vec<&str> = text.lines().collect();
        let mut out = Vec::with_capacity(text.len() / 5);
        let mut missing: Vec<String> = Vec::new();
        let mut n_missing = 0usize;
        // Chunks keep memory bounded while encode_batch runs in parallel within each.
        for chunk in lines.chunks(4096) {
            let encodings = self
                .tokenizer
                .encode_batch(chunk.to_vec(), false)
                .map_err(|e| {
                    let msg = e.to_string();
                    if msg.contains("Missing") || msg.contains("unk") {
                        let oov: Vec<&str> = chunk
                            .iter()
                            .flat_map(|l| l.split_whitespace())
                            .filter(|w| self.id(w).is_none())
                            .take(5)
                            .collect();
                        Error::bad_file(
                            origin,
                            format!(
                                "words outside the vocabulary and no `{UNK}` token to map them to \
                                 (first: {}); rebuild the vocabulary from this file too",
                                oov.join(", ")
                            ),
                        )
                    } else {
                        Error::bad_file(origin, msg)
                    }
                })?;
            for (line, enc) in chunk.iter().zip(encodings) {
                let ids = enc.get_ids();
                if unk.is_some() && ids.iter().any(|&i| Some(i) == unk) {
                    for w in line.split_whitespace() {
                        if w != UNK && self.id(w).is_none() {
                            n_missing += 1;
                            if missing.len() < 5 {
                                missing.push(w.to_string());
                            }
                        }
                    }
                }
                out.extend_from_slice(ids);
                out.push(eos);
            }
        }
        if n_missing > 0 {
            // Out-of-vocabulary words silently turned into <unk> would change the task:
            // say so instead.
            return Err(Error::bad_file(
                origin,
                format!(
                    "{n_missing} tokens are not in the vocabulary (first: {}); build the \
                     vocabulary from this file too or use the matching tokenizer.json",
                    missing.join(", ")
                ),
            ));
        }
        Ok(out)
    }

    /// Encodes a corpus file, through a token cache in `cache_dir` when given: the cache key
    /// is the file's SHA-256 and the tokenizer's, so a changed corpus or vocabulary is
    /// re-encoded.
    pub fn encode_file(&self, path: &Path, cache_dir: Option<&Path>) -> Result<TokenIds> {
        let Some(cache_dir) = cache_dir else {
            let text = read_corpus_text(path)?;
            return Ok(TokenIds::Owned(self.encode_text(&text, path)?));
        };
        let file_hash = sha256_file(path)?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let cache = cache_dir.join(format!(
            "{stem}-{}-{}.u32",
            &file_hash[..16],
            &self.hash[..16]
        ));
        if cache.exists() {
            match TokenIds::map(&cache, self.len()) {
                Ok(ids) => return Ok(ids),
                // The cache is derived data: a damaged one is rebuilt, and said so.
                Err(e) => eprintln!("note: {e}; rebuilding it"),
            }
        }
        let text = read_corpus_text(path)?;
        let ids = self.encode_text(&text, path)?;
        std::fs::create_dir_all(cache_dir).at(cache_dir)?;
        write_token_cache(&cache, &ids)?;
        TokenIds::map(&cache, self.len())
    }
}

/// Whitespace runs (newlines included) as one space: library messages go on one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reads a corpus file as UTF-8, rejecting a missing or empty one with a clear message.
pub fn read_corpus_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            " (run `make data` or data/fetch.sh, or fix the path: lm.data.dir in the config, \
             --corpus for fixclf embed)"
        } else {
            ""
        };
        Error::io(path, std::io::Error::new(e.kind(), format!("{e}{hint}")))
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|e| Error::bad_file(path, format!("not UTF-8 text ({e})")))?;
    if text.split_whitespace().next().is_none() {
        return Err(Error::bad_file(path, "the corpus is empty (no words)"));
    }
    Ok(text)
}

/// Token ids, either memory-mapped from the cache or owned.
pub enum TokenIds {
    Mapped(memmap2::Mmap),
    Owned(Vec<u32>),
}

impl std::fmt::Debug for TokenIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenIds({} tokens)", self.len())
    }
}

/// The first bytes of a token cache (format 2; format 1 had no header and is rebuilt).
const CACHE_MAGIC: &[u8; 16] = b"fixclf-tokens-2\n";
/// Header: magic, token count (u64 LE), SHA-256 of the ids, zero padding. 64 bytes keep the
/// ids 4-byte aligned in the map.
const CACHE_HEADER: usize = 64;

/// Writes a token cache: the header, then the ids as little-endian u32.
fn write_token_cache(path: &Path, ids: &[u32]) -> Result<()> {
    let le = |chunk: &[u32]| -> Vec<u8> { chunk.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let mut hasher = sha2::Sha256::new();
    for chunk in ids.chunks(1 << 16) {
        sha2::Digest::update(&mut hasher, le(chunk));
    }
    let mut header = [0u8; CACHE_HEADER];
    header[..16].copy_from_slice(CACHE_MAGIC);
    header[16..24].copy_from_slice(&(ids.len() as u64).to_le_bytes());
    header[24..56].copy_from_slice(&sha2::Digest::finalize(hasher));
    write_atomic(path, |w| {
        w.write_all(&header)?;
        for chunk in ids.chunks(1 << 16) {
            w.write_all(&le(chunk))?;
        }
        Ok(())
    })
}

/// Checks a token cache's bytes: header, length against the recorded count, SHA-256 of the
/// ids (a bit flip in an id would silently change the data) and every id below
/// `vocab_size`. Returns the number of tokens.
pub fn check_token_cache(bytes: &[u8], path: &Path, vocab_size: usize) -> Result<usize> {
    let bad = |msg: String| Error::bad_file(path, format!("damaged token cache: {msg}"));
    if bytes.len() < CACHE_HEADER || &bytes[..16] != CACHE_MAGIC {
        return Err(bad("no fixclf-tokens-2 header".into()));
    }
    let mut count = [0u8; 8];
    count.copy_from_slice(&bytes[16..24]);
    let count = u64::from_le_bytes(count);
    let body = &bytes[CACHE_HEADER..];
    if count.checked_mul(4) != Some(body.len() as u64) {
        return Err(bad(format!(
            "the header records {count} tokens but {} bytes of ids follow",
            body.len()
        )));
    }
    if sha2::Sha256::digest(body)[..] != bytes[24..56] {
        return Err(bad("the ids do not match their SHA-256".into()));
    }
    if let Some(i) = body
        .chunks_exact(4)
        .position(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize >= vocab_size)
    {
        return Err(bad(format!(
            "token {i} is outside the vocabulary of {vocab_size} words"
        )));
    }
    Ok(count as usize)
}

impl TokenIds {
    /// Maps a token cache after [`check_token_cache`].
    fn map(path: &Path, vocab_size: usize) -> Result<TokenIds> {
        let file = std::fs::File::open(path).at(path)?;
        // Safety: the cache is written atomically (temp + rename) and never modified in place.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.at(path)?;
        check_token_cache(&mmap, path, vocab_size)?;
        if cfg!(target_endian = "big") || mmap.as_ptr() as usize % 4 != 0 {
            let ids = mmap[CACHE_HEADER..]
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            return Ok(TokenIds::Owned(ids));
        }
        Ok(TokenIds::Mapped(mmap))
    }
}

impl Deref for TokenIds {
    type Target = [u32];
    fn deref(&self) -> &[u32] {
        match self {
            TokenIds::Owned(v) => v,
            // Safety: alignment and length checked in `map`; little-endian host.
            TokenIds::Mapped(m) => unsafe {
                std::slice::from_raw_parts(
                    m.as_ptr().add(CACHE_HEADER) as *const u32,
                    (m.len() - CACHE_HEADER) / 4,
                )
            },
        }
    }
}

/// The three splits of a corpus, encoded with one vocabulary.
pub struct Corpus {
    pub vocab: Vocab,
    pub train: TokenIds,
    pub valid: TokenIds,
    pub test: TokenIds,
}

/// Where a corpus lives.
#[derive(Debug, Clone)]
pub struct CorpusFiles {
    pub train: PathBuf,
    pub valid: PathBuf,
    pub test: PathBuf,
}

impl Corpus {
    /// Loads the three splits. The vocabulary comes from `tokenizer` when that file exists,
    /// else it is built from train + valid + test (the example's order) and saved there.
    pub fn load(files: &CorpusFiles, tokenizer: &Path, cache_dir: Option<&Path>) -> Result<Corpus> {
        let vocab = if tokenizer.exists() {
            Vocab::load(tokenizer)?
        } else {
            let vocab = Vocab::build(&[&files.train, &files.valid, &files.test])?;
            if let Some(dir) = tokenizer.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).at(dir)?;
            }
            vocab.save(tokenizer)?;
            vocab
        };
        let train = vocab.encode_file(&files.train, cache_dir)?;
        let valid = vocab.encode_file(&files.valid, cache_dir)?;
        let test = vocab.encode_file(&files.test, cache_dir)?;
        Ok(Corpus {
            vocab,
            train,
            valid,
            test,
        })
    }
}

/// Lays a token stream out in `batch` columns, time-major: `[len / batch, batch]`, dropping
/// the tail that does not fill a row (as `batchify` in the PyTorch example).
pub fn batchify(ids: &[u32], batch: usize, device: Device) -> Tensor {
    let rows = ids.len() / batch;
    let used = &ids[..rows * batch];
    let ids64: Vec<i64> = used.iter().map(|&i| i as i64).collect();
    Tensor::from_slice(&ids64)
        .view([batch as i64, rows as i64])
        .tr()
        .contiguous()
        .to_device(device)
}

/// The window of `source` (from [`batchify`]) starting at row `i`, at most `seq_len` long:
/// inputs `[len, batch]` and targets (shifted by one) flattened to `[len * batch]`.
pub fn get_batch(source: &Tensor, i: i64, seq_len: i64) -> (Tensor, Tensor) {
    let rows = source.size()[0];
    let len = seq_len.min(rows - 1 - i);
    let data = source.narrow(0, i, len);
    let target = source.narrow(0, i + 1, len).reshape([-1]);
    (data, target.to_kind(Kind::Int64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn vocab_in_first_appearance_order_with_eos() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.txt", "the cat sat\n\nthe dog\n");
        let v = Vocab::build(&[&a]).unwrap();
        assert_eq!(v.words(), ["the", "cat", "sat", "<eos>", "dog"]);
        let ids = v.encode_file(&a, None).unwrap();
        assert_eq!(&ids[..], &[0, 1, 2, 3, 3, 0, 4, 3]);
    }

    #[test]
    fn tokenizer_round_trip_and_cache() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.txt", "x y z\ny x\n");
        let v = Vocab::build(&[&a]).unwrap();
        let tok = dir.path().join("tokenizer.json");
        v.save(&tok).unwrap();
        let v2 = Vocab::load(&tok).unwrap();
        assert_eq!(v.words(), v2.words());
        let cache = dir.path().join("cache");
        let first = v2.encode_file(&a, Some(&cache)).unwrap();
        assert!(matches!(first, TokenIds::Mapped(_)));
        let again = v2.encode_file(&a, Some(&cache)).unwrap();
        assert_eq!(&first[..], &again[..]);
        // A changed corpus gets a new cache entry.
        std::fs::write(&a, "z z\n").unwrap();
        let changed = v2.encode_file(&a, Some(&cache)).unwrap();
        assert_eq!(&changed[..], &[2, 2, 3]);
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2);
    }

    #[test]
    fn out_of_vocabulary_words_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.txt", "x y\n");
        let b = write(dir.path(), "b.txt", "x q r\n");
        let v = Vocab::build(&[&a]).unwrap();
        let err = v.encode_file(&b, None).unwrap_err().to_string();
        assert!(err.contains("b.txt") && err.contains("q"), "{err}");
        let with_unk = write(dir.path(), "c.txt", "x <unk>\n");
        let v = Vocab::build(&[&with_unk]).unwrap();
        let err = v.encode_file(&b, None).unwrap_err().to_string();
        assert!(err.contains("2 tokens are not in the vocabulary"), "{err}");
    }

    #[test]
    fn missing_and_empty_corpus() {
        let dir = tempfile::tempdir().unwrap();
        let err = Vocab::build(&[&dir.path().join("nope.txt")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("nope.txt") && err.contains("data/fetch.sh"),
            "{err}"
        );
        let e = write(dir.path(), "e.txt", " \n\n");
        let err = Vocab::build(&[&e]).unwrap_err().to_string();
        assert!(err.contains("e.txt") && err.contains("empty"), "{err}");
    }

    #[test]
    fn batching_matches_the_pytorch_example() {
        let ids: Vec<u32> = (0..26).collect();
        let b = batchify(&ids, 4, Device::Cpu);
        assert_eq!(b.size(), [6, 4]);
        // Column j holds the j-th contiguous stream.
        assert_eq!(b.int64_value(&[0, 1]), 6);
        assert_eq!(b.int64_value(&[1, 0]), 1);
        let (x, y) = get_batch(&b, 0, 4);
        assert_eq!(x.size(), [4, 4]);
        assert_eq!(y.size(), [16]);
        assert_eq!(y.int64_value(&[0]), 1);
        let (x, y) = get_batch(&b, 4, 4);
        assert_eq!(x.size(), [1, 4]);
        assert_eq!(y.size(), [4]);
    }
}
