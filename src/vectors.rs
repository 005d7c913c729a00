//! Word vectors on disk: the `.npy` (f32, V x dim, C order) + `.vocab` (one word per line)
//! pair that `fixclf embed` writes and the fixed pretrained classifier reads.
//! (The word2vec text/binary and GloVe formats are added by the embedding tool.)
use crate::error::{Error, IoContext, Result};
use crate::fsutil::write_atomic;
use std::io::Write;
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

/// Writes `<npy>` and its `.vocab` beside it, each atomically.
pub fn write_npy_with_vocab(npy: &Path, vectors: &WordVectors) -> Result<()> {
    write_npy_f32(npy, vectors.len(), vectors.dim, &vectors.data)?;
    let vocab = vocab_path_for(npy);
    write_atomic(&vocab, |w| {
        for word in &vectors.words {
            writeln!(w, "{word}")?;
        }
        Ok(())
    })
}

/// Reads `<npy>` and the `.vocab` beside it.
pub fn read_npy_with_vocab(npy: &Path) -> Result<WordVectors> {
    let (rows, dim, data) = read_npy_f32(npy)?;
    let vocab = vocab_path_for(npy);
    let text = std::fs::read_to_string(&vocab).at(&vocab)?;
    let words: Vec<String> = text.lines().map(str::to_string).collect();
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

/// Reads word vectors in any supported format, chosen by the file name:
/// `.npy` (+ `.vocab` beside it). Other formats are added by the embedding tool.
pub fn read_any(path: &Path) -> Result<WordVectors> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("npy") => read_npy_with_vocab(path),
        _ => Err(Error::bad_file(
            path,
            "unknown word-vector format; expected NAME.npy with NAME.vocab beside it",
        )),
    }
}

/// Writes a 2-D little-endian f32 `.npy` (format 1.0) atomically.
pub fn write_npy_f32(path: &Path, rows: usize, cols: usize, data: &[f32]) -> Result<()> {
    assert_eq!(rows * cols, data.len());
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // magic(6) + version(2) + header_len(2) + header + '\n' must be a multiple of 64.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    write_atomic(path, |w| {
        w.write_all(b"\x93NUMPY\x01\x00")?;
        w.write_all(&(header.len() as u16).to_le_bytes())?;
        w.write_all(header.as_bytes())?;
        for chunk in data.chunks(1 << 16) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|x| x.to_le_bytes()).collect();
            w.write_all(&bytes)?;
        }
        Ok(())
    })
}

/// Reads a 2-D f32 `.npy` (little-endian, C order; format 1.0/2.0/3.0).
pub fn read_npy_f32(path: &Path) -> Result<(usize, usize, Vec<f32>)> {
    let bytes = std::fs::read(path).at(path)?;
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
        v => return Err(bad(&format!("unsupported format version {v}"))),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated header"))?;
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
    if body.len() != rows * cols * 4 {
        return Err(bad(&format!(
            "truncated: shape ({rows}, {cols}) needs {} bytes of data, found {}",
            rows * cols * 4,
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
