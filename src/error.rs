//! The crate's one error type: every failure a user can cause or meet, with what to do about it.

/// Everything that can go wrong, from a bad option to a device without an adapter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A user-facing option (named as on the command line, without its dashes) has a value that cannot work.
    #[error("invalid --{option} {}: {reason}", quote(value))]
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

    /// The network or data do not fit in what the device can hold or dispatch. `remedy` names the option
    /// that shrinks what is too large (--layers, --batch-size, the rows, ...), since that differs by case.
    #[error("{what} needs {needed} {unit}, but the device allows at most {limit}: {remedy}")]
    TooLarge {
        what: String,
        needed: u64,
        limit: u64,
        unit: &'static str,
        remedy: &'static str,
    },

    /// An environment variable that selects the adapter holds a value it cannot take.
    #[error("environment variable {name}={}: {reason}", quote(value))]
    Environment {
        name: &'static str,
        value: String,
        reason: String,
    },

    /// The work would need more memory than the machine has.
    #[error(
        "{what} needs {} of memory, but this machine has {} available",
        gib(*needed),
        gib(*available)
    )]
    OutOfMemory {
        what: String,
        needed: u64,
        available: u64,
    },

    /// wgpu found no adapter under the current backend/adapter selection.
    #[error(
        "no GPU adapter found ({reason}). Install a Vulkan driver (on Debian/Ubuntu: \
         `apt-get install mesa-vulkan-drivers` gives the software driver lavapipe), check \
         WGPU_BACKEND / WGPU_ADAPTER_NAME, or train without a GPU with `--backend cpu`"
    )]
    NoAdapter { reason: String },

    /// No adapter's name contains the one asked for (by `--adapter` or WGPU_ADAPTER_NAME).
    #[error(
        "{from} {} matches no adapter's name; wgpu finds {}; the backend in brackets is not part of the \
         name: WGPU_BACKEND chooses it (e.g. WGPU_BACKEND={}); `wgmlp adapters` lists what wgpu finds, \
         and `--backend cpu` trains without a GPU",
        quote(wanted),
        if found.is_empty() { "none".to_string() } else { quote_list(found) },
        backend_example(wanted)
    )]
    AdapterNotFound {
        from: &'static str,
        wanted: String,
        found: Vec<String>,
    },

    /// The adapter refused to open a device with the limits we need.
    #[error("the adapter {adapter:?} could not open a device: {reason}")]
    RequestDevice { adapter: String, reason: String },

    /// A GPU operation failed validation or ran out of memory.
    #[error("GPU error during {during}: {reason}")]
    Gpu {
        during: &'static str,
        reason: String,
    },

    /// The device stopped working (a driver reset, a removed GPU): nothing more runs on it.
    #[error(
        "the GPU device was lost: {reason}; run again, or train without a GPU with `--backend cpu`"
    )]
    DeviceLost { reason: String },

    /// A library function was handed a case it does not cover, e.g. softmax where only an element-wise
    /// activation can go.
    #[error("{op} does not take {what}: {reason}")]
    Unsupported {
        op: &'static str,
        what: String,
        reason: &'static str,
    },

    /// A file could not be read or written. The cause is the source, not part of this message, so that a
    /// chain of causes (`{:#}`) says it once.
    #[error("cannot {action} {path}")]
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
    #[error("training diverged by epoch {epoch}: {what}; try a smaller --lr (now {})", number(*lr))]
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

/// The longest value (in bytes) a message quotes whole.
const QUOTE_LIMIT: usize = 80;
/// The most items of a list a message shows.
const LIST_LIMIT: usize = 10;

/// `text` quoted for a message and cut to a readable length: a 50 MB cell is shown by its start and its
/// size, not echoed whole.
pub fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE_LIMIT) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes in all)", &text[..cut], text.len()),
    }
}

/// A list of values quoted for a message: the first few, then how many more there are.
pub fn quote_list<S: AsRef<str>>(items: &[S]) -> String {
    let shown: Vec<String> = items
        .iter()
        .take(LIST_LIMIT)
        .map(|item| quote(item.as_ref()))
        .collect();
    let more = items.len().saturating_sub(LIST_LIMIT);
    if more == 0 {
        format!("[{}]", shown.join(", "))
    } else {
        format!(
            "[{}, … {more} more, {} in all]",
            shown.join(", "),
            items.len()
        )
    }
}

/// A WGPU_BACKEND value to show beside an adapter name that matched nothing: the name itself where it
/// names a backend (`--adapter gl`), else vulkan.
fn backend_example(wanted: &str) -> String {
    match wgpu::Backends::from_comma_list(wanted).is_empty() {
        true => "vulkan".into(),
        false => wanted.trim().to_lowercase(),
    }
}

/// Bytes as GiB for a message.
fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// A number as a message shows it: plain where that is short, with an exponent otherwise (1e30, not 31
/// digits).
pub(crate) fn number(value: f32) -> String {
    let magnitude = value.abs();
    if value == 0.0 || (1e-4..1e7).contains(&magnitude) || !value.is_finite() {
        value.to_string()
    } else {
        format!("{value:e}")
    }
}
