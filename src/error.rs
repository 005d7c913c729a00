//! The crate-wide error type. Every variant names what it is about (file, field, value)
//! and how to fix it, so the CLI can print it on one line and exit with code 2.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file that exists but whose content is wrong (format, shape, vocabulary, ...).
    #[error("{path}: {msg}")]
    BadFile { path: PathBuf, msg: String },
    /// A config field with a bad value; `file` is the config file (or `--set`).
    #[error("{file}: {}{msg}", field_part(.field))]
    Config {
        file: String,
        field: String,
        msg: String,
    },
    /// A command-line or API argument with a bad value.
    #[error("{arg}: {msg}")]
    Arg { arg: String, msg: String },
    /// Training diverged (NaN or infinite loss).
    #[error("{0}")]
    Diverged(String),
    /// SIGINT or SIGTERM stopped the work at a safe point: `what` says where and what was
    /// kept, `next` how to continue. The binary exits with the signal's code (130, 143).
    #[error("{what}; {next}")]
    Interrupted {
        signal: Signal,
        what: String,
        next: String,
    },
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// A data-parallel operation failed on this rank (a peer died or stalled past the
    /// timeout, the store is unreachable, the ranks disagree): `op` says which.
    #[error("rank {rank}: {op}: {msg}")]
    Distributed {
        rank: usize,
        op: String,
        msg: String,
    },
    /// One part of a larger piece of work failed: `what` names the part (`bench resnet20
    /// fixed`), `source` what went wrong.
    #[error("{what}: {source}")]
    Within {
        what: String,
        #[source]
        source: Box<Error>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    pub fn bad_file(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::BadFile {
            path: path.into(),
            msg: one_line(msg.into()),
        }
    }
    pub fn config(
        file: impl Into<String>,
        field: impl Into<String>,
        msg: impl Into<String>,
    ) -> Self {
        Error::Config {
            file: file.into(),
            field: one_line(field.into()),
            msg: one_line(msg.into()),
        }
    }
    pub fn interrupted(signal: Signal, what: impl Into<String>, next: impl Into<String>) -> Self {
        Error::Interrupted {
            signal,
            what: what.into(),
            next: next.into(),
        }
    }
    pub fn distributed(rank: usize, op: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Distributed {
            rank,
            op: one_line(op.into()),
            msg: one_line(msg.into()),
        }
    }
    pub fn within(what: impl Into<String>, source: Error) -> Self {
        Error::Within {
            what: what.into(),
            source: Box::new(source),
        }
    }
    pub fn arg(arg: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Arg {
            arg: arg.into(),
            msg: one_line(msg.into()),
        }
    }
}

/// `field `x`: ` before a config error's message; nothing for one about the whole file.
fn field_part(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("field `{field}`: ")
    }
}

/// Line breaks as spaces: a message quotes text from the files it is about (a parser's
/// error, a bad value), and the CLI prints every error on one line.
fn one_line(msg: String) -> String {
    if msg.contains(['\n', '\r']) {
        msg.replace("\r\n", " ").replace(['\n', '\r'], " ")
    } else {
        msg
    }
}

/// Extension to attach a path to `std::io::Result`s.
pub trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}

/// A termination signal that asked the program to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal(i32);

impl Signal {
    pub const INT: Signal = Signal(signal_hook::consts::SIGINT);
    pub const TERM: Signal = Signal(signal_hook::consts::SIGTERM);

    /// The signal of number `n` (as the handlers record it).
    pub(crate) fn from_number(n: i32) -> Signal {
        Signal(n)
    }

    pub(crate) fn number(self) -> i32 {
        self.0
    }

    pub fn name(self) -> &'static str {
        match self.0 {
            signal_hook::consts::SIGINT => "SIGINT",
            signal_hook::consts::SIGTERM => "SIGTERM",
            _ => "signal",
        }
    }

    /// The shell's convention, 128 + the signal number: 130 for SIGINT, 143 for SIGTERM.
    pub fn exit_code(self) -> u8 {
        (128 + self.0).clamp(0, 255) as u8
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
