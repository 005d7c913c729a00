//! Word vectors on disk: the `.npy` (f32, V x dim, C order) + `.vocab` (one word per line)
//! pair that `fixclf embed` writes and the fixed pretrained classifier reads.
//! Also the word2vec text (`V dim` header, then `word v1 ... vd`) and binary (header line,
//! then `word ` + dim little-endian f32 + `\n`) formats, readable by gensim's
//! `KeyedVectors.load_word2vec_format`, and GloVe text (no header) for reading.
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{write_atomic, StagedFiles};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// A word-vector table: row `i` of `data` (length `dim`) belongs to `words[i]`.
#[derive(Debug, Clone, PartialEq)]
pub struct WordVectors {
    pub words: Vec<String>,
    pub dim: usize,
    pub data: Vec<f32>,
}

impl WordVectors {
    pub fn new(words: Vec<String>, dim: usize, data: Vec<f32>) -> Self {
        assert_eq!(
            words.len() * dim,
            data.len(),
            "WordVectors: words x dim != data length"
        );
        Self { words, dim, data }
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

/// `embeddings/NAME.npy` -> `embeddings/NAME.vocab`.
pub fn vocab_path_for(npy: &Path) -> PathBuf {
    npy.with_extension("vocab")
}

/// Writes `<npy>` and its `.vocab` beside it, replacing both only once both are written.
pub fn write_npy_with_vocab(npy: &Path, vectors: &WordVectors) -> Result<()> {
    let mut files = StagedFiles::default();
    stage_npy_with_vocab(&mut files, npy, vectors)?;
    files.commit()
}

/// Stages `<npy>` and its `.vocab` in `files` (the caller commits them with its own files).
pub fn stage_npy_with_vocab(
    files: &mut StagedFiles,
    npy: &Path,
    vectors: &WordVectors,
) -> Result<()> {
    files.write(npy, |w| {
        write_npy_f32_to(w, vectors.len(), vectors.dim, &vectors.data)
    })?;
    files.write(&vocab_path_for(npy), |w| {
        for word in &vectors.words {
            writeln!(w, "{word}")?;
        }
        Ok(())
    })
}

/// Reads `<npy>` and the `.vocab` beside it. When `fixclf embed` wrote them, the `.json`
/// beside them records their SHA-256: a file that no longer has it is damaged (a bit flip
/// passes every structural check) and is refused with the fix.
pub fn read_npy_with_vocab(npy: &Path) -> Result<WordVectors> {
    let npy_bytes = std::fs::read(npy).at(npy)?;
    let (rows, dim, data) = parse_npy_f32(&npy_bytes, npy)?;
    let vocab = vocab_path_for(npy);
    let vocab_bytes = std::fs::read(&vocab).at(&vocab)?;
    check_recorded_hashes(npy, &npy_bytes, &vocab_bytes)?;
    let words = parse_vocab(&vocab_bytes, &vocab)?;
    if words.len() != rows {
        return Err(Error::bad_file(
            &vocab,
            format!(
                "{} words but {} has {rows} rows; the two files must come from the same run",
                words.len(),
                npy.display()
            ),
        ));
    }
    Ok(WordVectors::new(words, dim, data))
}

/// The `.vocab` format: one word a line, UTF-8.
pub fn parse_vocab(bytes: &[u8], path: &Path) -> Result<Vec<String>> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Error::bad_file(
            path,
            format!("not UTF-8 text ({e}); a .vocab file holds one word a line"),
        )
    })?;
    Ok(text.lines().map(str::to_string).collect())
}

/// The keys of `NAME.json` (written by `fixclf embed`) that hold the SHA-256 of `NAME.npy`
/// and `NAME.vocab`.
pub const NPY_SHA_KEY: &str = "npy_sha256";
pub const VOCAB_SHA_KEY: &str = "vocab_sha256";

/// Compares the `.npy` and `.vocab` bytes with the hashes their `.json` recorded, if it did
/// (vectors from elsewhere have no `.json`; older ones have no hashes in it).
fn check_recorded_hashes(npy: &Path, npy_bytes: &[u8], vocab_bytes: &[u8]) -> Result<()> {
    let json = npy.with_extension("json");
    let Ok(text) = std::fs::read_to_string(&json) else {
        return Ok(());
    };
    let Ok(meta) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Ok(());
    };
    let vocab = vocab_path_for(npy);
    for (key, path, bytes) in [
        (NPY_SHA_KEY, npy, npy_bytes),
        (VOCAB_SHA_KEY, &vocab, vocab_bytes),
    ] {
        let Some(want) = meta.get(key).and_then(|v| v.as_str()) else {
            continue;
        };
        if crate::fsutil::sha256_bytes(bytes) != want {
            return Err(Error::bad_file(
                path,
                format!(
                    "damaged: its SHA-256 differs from the one {} recorded when `fixclf embed` \
                     wrote it; recompute the embeddings with `fixclf embed ... --force` (or \
                     delete the three files and rerun the suite)",
                    json.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Reads word vectors in any supported format, chosen by the file name:
/// `.npy` (+ `.vocab` beside it); `.txt`/`.vec`: word2vec text if the first line is
/// `<int> <int>`, else GloVe text; `.bin`: word2vec binary.
pub fn read_any(path: &Path) -> Result<WordVectors> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("npy") => read_npy_with_vocab(path),
        Some("txt") | Some("vec") => read_text_any(path),
        Some("bin") => read_word2vec_bin(path),
        _ => Err(Error::bad_file(
            path,
            "unknown word-vector format; expected NAME.npy (with NAME.vocab beside it), \
             NAME.txt/NAME.vec (word2vec or GloVe text) or NAME.bin (word2vec binary)",
        )),
    }
}

/// Writes word vectors in the format chosen by the extension (see [`read_any`]); `.txt` and
/// `.vec` are written as word2vec text (with the `V dim` header).
pub fn write_any(path: &Path, vectors: &WordVectors) -> Result<()> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("npy") => write_npy_with_vocab(path, vectors),
        Some("txt") | Some("vec") => write_word2vec_text(path, vectors),
        Some("bin") => write_word2vec_bin(path, vectors),
        _ => Err(Error::arg(
            path.display().to_string(),
            "unknown word-vector format; name the output NAME.npy, NAME.txt, NAME.vec or NAME.bin",
        )),
    }
}

fn check_words_writable(path: &Path, vectors: &WordVectors) -> Result<()> {
    if let Some(w) = vectors
        .words
        .iter()
        .find(|w| w.is_empty() || w.contains(char::is_whitespace))
    {
        return Err(Error::arg(
            path.display().to_string(),
            format!("word {w:?} is empty or contains whitespace; the word2vec formats cannot hold it (use .npy)"),
        ));
    }
    Ok(())
}

/// Writes the word2vec text format. Values use f32 `Display`, which round-trips exactly.
pub fn write_word2vec_text(path: &Path, vectors: &WordVectors) -> Result<()> {
    check_words_writable(path, vectors)?;
    write_atomic(path, |w| {
        writeln!(w, "{} {}", vectors.len(), vectors.dim)?;
        for (i, word) in vectors.words.iter().enumerate() {
            w.write_all(word.as_bytes())?;
            for x in vectors.row(i) {
                write!(w, " {x}")?;
            }
            w.write_all(b"\n")?;
        }
        Ok(())
    })
}

/// Writes the word2vec binary format (as word2vec.c and gensim write it).
pub fn write_word2vec_bin(path: &Path, vectors: &WordVectors) -> Result<()> {
    check_words_writable(path, vectors)?;
    write_atomic(path, |w| {
        writeln!(w, "{} {}", vectors.len(), vectors.dim)?;
        for (i, word) in vectors.words.iter().enumerate() {
            w.write_all(word.as_bytes())?;
            w.write_all(b" ")?;
            let bytes: Vec<u8> = vectors
                .row(i)
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect();
            w.write_all(&bytes)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })
}

fn parse_header(line: &str) -> Option<(usize, usize)> {
    let mut it = line.split_whitespace();
    let v = it.next()?.parse().ok()?;
    let d = it.next()?.parse().ok()?;
    it.next().is_none().then_some((v, d))
}

/// Reads a `.txt`/`.vec` file: word2vec text if the first line is `<int> <int>`, else GloVe.
pub fn read_text_any(path: &Path) -> Result<WordVectors> {
    let file = std::fs::File::open(path).at(path)?;
    parse_text_any(std::io::BufReader::new(file), path)
}

/// Parses word2vec text or GloVe (see [`read_text_any`]); `path` only names the file in
/// errors. Memory grows with the values actually read, never with what the header claims.
pub fn parse_text_any(mut reader: impl BufRead, path: &Path) -> Result<WordVectors> {
    let not_text = |lineno: usize| {
        Error::bad_file(
            path,
            format!("line {lineno} is not UTF-8 text; not a word2vec or GloVe text file"),
        )
    };
    let read_err = |e: std::io::Error, lineno: usize| {
        if e.kind() == std::io::ErrorKind::InvalidData {
            not_text(lineno)
        } else {
            Error::io(path, e)
        }
    };
    let mut first = String::new();
    reader.read_line(&mut first).map_err(|e| read_err(e, 1))?;
    let header = parse_header(&first);
    let mut words = Vec::new();
    let mut data = Vec::new();
    let mut dim = header.map(|h| h.1);
    let mut parse_line = |line: &str, lineno: usize| -> Result<()> {
        let line = line.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            return Ok(());
        }
        let mut it = line.split(' ').filter(|s| !s.is_empty());
        let word = it.next().unwrap_or_default();
        let start = data.len();
        for tok in it {
            let x: f32 = tok.parse().map_err(|_| {
                Error::bad_file(path, format!("line {lineno}: {tok:?} is not a number"))
            })?;
            data.push(x);
        }
        let n = data.len() - start;
        match dim {
            None => dim = Some(n),
            Some(d) if d != n => {
                return Err(Error::bad_file(
                    path,
                    format!("line {lineno}: {n} values for {word:?}, expected {d}"),
                ))
            }
            _ => {}
        }
        words.push(word.to_string());
        Ok(())
    };
    if header.is_none() {
        parse_line(&first, 1)?;
    }
    for (i, line) in reader.lines().enumerate() {
        parse_line(&line.map_err(|e| read_err(e, i + 2))?, i + 2)?;
    }
    let dim = dim.unwrap_or(0);
    if let Some((v, _)) = header {
        if v != words.len() {
            return Err(Error::bad_file(
                path,
                format!("header says {v} words but the file has {}", words.len()),
            ));
        }
    }
    if words.is_empty() || dim == 0 {
        return Err(Error::bad_file(path, "no word vectors in the file"));
    }
    Ok(WordVectors::new(words, dim, data))
}

/// Reads the word2vec binary format.
pub fn read_word2vec_bin(path: &Path) -> Result<WordVectors> {
    let bytes = std::fs::read(path).at(path)?;
    parse_word2vec_bin(&bytes, path)
}

/// Parses the word2vec binary format; `path` only names the file in errors. The header's
/// counts are checked against the bytes that follow before anything is allocated for them.
pub fn parse_word2vec_bin(bytes: &[u8], path: &Path) -> Result<WordVectors> {
    let nl = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| Error::bad_file(path, "no header line; not a word2vec binary file"))?;
    let (v, dim) = std::str::from_utf8(&bytes[..nl])
        .ok()
        .and_then(parse_header)
        .ok_or_else(|| {
            Error::bad_file(
                path,
                "first line must be `<vocab size> <dim>` (word2vec binary)",
            )
        })?;
    if v == 0 || dim == 0 {
        return Err(Error::bad_file(
            path,
            format!("the header says {v} words of dimension {dim}: no word vectors"),
        ));
    }
    // Each record is at least a one-byte word, a space and 4 x dim bytes.
    let rest = bytes.len() - nl - 1;
    let row_bytes = dim.checked_mul(4);
    let needed = row_bytes.and_then(|r| r.checked_add(2)?.checked_mul(v));
    if needed.is_none_or(|n| n > rest) {
        return Err(Error::bad_file(
            path,
            format!(
                "truncated or a wrong header: {v} words of dimension {dim} need more than the \
                 {rest} bytes after the header"
            ),
        ));
    }
    let row_bytes = 4 * dim;
    let mut pos = nl + 1;
    let mut words = Vec::with_capacity(v);
    let mut data = Vec::with_capacity(v * dim);
    for i in 0..v {
        while pos < bytes.len() && (bytes[pos] == b'\n' || bytes[pos] == b'\r') {
            pos += 1;
        }
        let sp = bytes[pos..]
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| Error::bad_file(path, format!("truncated at word {i} of {v}")))?;
        let word = String::from_utf8_lossy(&bytes[pos..pos + sp]).into_owned();
        pos += sp + 1;
        let body = bytes.get(pos..pos + row_bytes).ok_or_else(|| {
            Error::bad_file(
                path,
                format!("truncated in the vector of word {i} ({word:?})"),
            )
        })?;
        data.extend(
            body.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
        pos += row_bytes;
        words.push(word);
    }
    Ok(WordVectors::new(words, dim, data))
}

/// Writes a 2-D little-endian f32 `.npy` (format 1.0) atomically.
pub fn write_npy_f32(path: &Path, rows: usize, cols: usize, data: &[f32]) -> Result<()> {
    write_atomic(path, |w| write_npy_f32_to(w, rows, cols, data))
}

fn write_npy_f32_to(
    w: &mut impl Write,
    rows: usize,
    cols: usize,
    data: &[f32],
) -> std::io::Result<()> {
    assert_eq!(rows * cols, data.len());
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // magic(6) + version(2) + header_len(2) + header + '\n' must be a multiple of 64.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    w.write_all(b"\x93NUMPY\x01\x00")?;
    w.write_all(&(header.len() as u16).to_le_bytes())?;
    w.write_all(header.as_bytes())?;
    for chunk in data.chunks(1 << 16) {
        let bytes: Vec<u8> = chunk.iter().flat_map(|x| x.to_le_bytes()).collect();
        w.write_all(&bytes)?;
    }
    Ok(())
}

/// Reads a 2-D f32 `.npy` (little-endian, C order; format 1.0/2.0/3.0).
pub fn read_npy_f32(path: &Path) -> Result<(usize, usize, Vec<f32>)> {
    let bytes = std::fs::read(path).at(path)?;
    parse_npy_f32(&bytes, path)
}

/// Parses a 2-D f32 `.npy` from its bytes; `path` only names the file in errors. The shape
/// must account for exactly the bytes after the header (checked without overflow).
pub fn parse_npy_f32(bytes: &[u8], path: &Path) -> Result<(usize, usize, Vec<f32>)> {
    let bad = |msg: &str| Error::bad_file(path, format!("not a readable .npy matrix: {msg}"));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("missing the \\x93NUMPY magic"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        2 | 3 => return Err(bad("truncated header")),
        v => return Err(bad(&format!("unsupported format version {v}"))),
    };
    let header = bytes
        .get(start..start + header_len)
        .ok_or_else(|| bad("truncated header"))?;
    let header = std::str::from_utf8(header).map_err(|_| bad("the header is not text"))?;
    if !header.contains("'descr': '<f4'") {
        return Err(bad(
            "dtype must be little-endian float32 ('<f4'); convert with arr.astype('<f4')",
        ));
    }
    if header.contains("'fortran_order': True") {
        return Err(bad(
            "Fortran order is not supported; save with np.ascontiguousarray",
        ));
    }
    let shape = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .map(|s| s.trim().trim_start_matches('('))
        .ok_or_else(|| bad("no shape in header"))?;
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad("unparsable shape"))?;
    let [rows, cols] = dims[..] else {
        return Err(bad(&format!("expected a 2-D matrix, found shape {dims:?}")));
    };
    let body = &bytes[start + header_len..];
    let needed = rows.checked_mul(cols).and_then(|n| n.checked_mul(4));
    if needed != Some(body.len()) {
        let how = if needed.is_none_or(|n| body.len() < n) {
            "truncated"
        } else {
            "longer than its shape"
        };
        let needed = needed.map_or("more than 2^64".to_string(), |n| n.to_string());
        return Err(bad(&format!(
            "{how}: shape ({rows}, {cols}) needs {needed} bytes of data, found {}",
            body.len()
        )));
    }
    let data = body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((rows, cols, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.npy");
        let v = WordVectors::new(
            vec!["a".into(), "b".into(), "<eos>".into()],
            2,
            vec![1.0, 2.0, 3.0, 4.0, 5.0, -6.5],
        );
        write_npy_with_vocab(&path, &v).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        assert_eq!(read_npy_with_vocab(&path).unwrap(), v);
    }

    fn sample() -> WordVectors {
        WordVectors::new(
            vec!["a".into(), "<eos>".into(), "é".into()],
            3,
            vec![
                0.1,
                -2.5e-8,
                3.4e38,
                1.0 / 3.0,
                -0.0,
                7.0,
                f32::MIN_POSITIVE,
                1e-45,
                -1.25,
            ],
        )
    }

    #[test]
    fn embed_formats_round_trip_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let v = sample();
        for name in ["e.txt", "e.vec", "e.bin", "e.npy"] {
            let path = dir.path().join(name);
            write_any(&path, &v).unwrap();
            let back = read_any(&path).unwrap();
            assert_eq!(back.words, v.words, "{name}");
            let a: Vec<u32> = back.data.iter().map(|x| x.to_bits()).collect();
            let b: Vec<u32> = v.data.iter().map(|x| x.to_bits()).collect();
            assert_eq!(a, b, "{name}");
        }
    }

    #[test]
    fn embed_formats_glove_text_without_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.txt");
        std::fs::write(&path, "the 0.5 -1\nof 2 3e-2\n").unwrap();
        let v = read_any(&path).unwrap();
        assert_eq!(v.words, ["the", "of"]);
        assert_eq!(v.dim, 2);
        assert_eq!(v.data, [0.5, -1.0, 2.0, 0.03]);
        std::fs::write(&path, "the 0.5 -1\nof 2\n").unwrap();
        let err = read_any(&path).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn embed_formats_truncated_bin_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.bin");
        write_any(&path, &sample()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
        let err = read_any(&path).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn truncated_npy_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.npy");
        write_npy_f32(&path, 2, 2, &[1.0; 4]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let err = read_npy_f32(&path).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
    }
}
