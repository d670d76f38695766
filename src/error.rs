//! The crate's one error type: every failure a user can cause or meet, with what to do about it.

/// Everything that can go wrong, from a bad option to a device without an adapter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A user-facing option (named as on the command line, without its dashes) has a value that cannot work.
    #[error("invalid --{option} {value:?}: {reason}")]
    InvalidOption {
        option: &'static str,
        value: String,
        reason: String,
    },

    /// An operation was handed buffers whose shapes do not fit together.
    #[error("shape mismatch in {op}: expected {expected}, got {got}")]
    ShapeMismatch {
        op: &'static str,
        expected: String,
        got: String,
    },

    /// The network or data do not fit in what the device can hold or dispatch.
    #[error(
        "{what} needs {needed} {unit}, but the device allows at most {limit}; use smaller layers or a device with larger limits"
    )]
    TooLarge {
        what: String,
        needed: u64,
        limit: u64,
        unit: &'static str,
    },

    /// wgpu found no adapter under the current backend/adapter selection.
    #[error(
        "no GPU adapter found ({reason}). Install a Vulkan driver (on Debian/Ubuntu: \
         `apt-get install mesa-vulkan-drivers` gives the software driver lavapipe), check \
         WGPU_BACKEND / WGPU_ADAPTER_NAME, or train without a GPU with `--backend cpu`"
    )]
    NoAdapter { reason: String },

    /// The adapter refused to open a device with the limits we need.
    #[error("the adapter {adapter:?} could not open a device: {reason}")]
    RequestDevice { adapter: String, reason: String },

    /// A GPU operation failed validation or ran out of memory.
    #[error("GPU error during {during}: {reason}")]
    Gpu {
        during: &'static str,
        reason: String,
    },

    /// A file could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        path: String,
        action: &'static str,
        source: std::io::Error,
    },

    /// A data file (or generated table) holds something the network cannot take.
    #[error("{origin}{}: {reason}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Data {
        origin: String,
        line: Option<u64>,
        reason: String,
    },

    /// A model file is not one this program wrote, or not whole.
    #[error("{path} is not a usable model: {reason}")]
    Model { path: String, reason: String },

    /// Training diverged: the loss or a parameter is no longer a finite number.
    #[error("training diverged by epoch {epoch}: {what}; try a smaller --lr (now {lr})")]
    Diverged { epoch: u64, what: String, lr: f32 },

    /// Reading results back from the GPU failed.
    #[error("could not read results back from the GPU: {0}")]
    Readback(String),
}

/// The crate-wide result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: &std::path::Path, action: &'static str, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            action,
            source,
        }
    }

    pub fn data(source: &str, line: Option<u64>, reason: impl Into<String>) -> Self {
        Error::Data {
            origin: source.to_string(),
            line,
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::InvalidOption`].
    pub fn invalid(option: &'static str, value: impl ToString, reason: impl Into<String>) -> Self {
        Error::InvalidOption {
            option,
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}
