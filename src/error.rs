//! The crate's one error type: every failure a user can cause or meet, with what to do about it.

/// Everything that can go wrong, from a bad option to a device without an adapter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A user-facing option has a value that cannot work.
    #[error("invalid {option} {value:?}: {reason}")]
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

    /// Reading results back from the GPU failed.
    #[error("could not read results back from the GPU: {0}")]
    Readback(String),
}

/// The crate-wide result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::InvalidOption`].
    pub fn invalid(option: &'static str, value: impl ToString, reason: impl Into<String>) -> Self {
        Error::InvalidOption {
            option,
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}
