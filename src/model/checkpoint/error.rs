//! [`CheckpointError`]: everything that can go wrong while reading or writing model weights.

/// Everything that can go wrong while reading or writing model weights.
///
/// Every variant names the file involved; the `Display` text is written for
/// end users.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// File being read.
        path: String,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// File being written.
        path: String,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Refused to overwrite an existing file.
    #[error("{path} already exists; refusing to overwrite it")]
    AlreadyExists {
        /// The existing file.
        path: String,
    },
    /// The content is neither a PyTorch zip checkpoint nor safetensors.
    #[error("{path} is not a model checkpoint locosep can read: {detail}")]
    NotACheckpoint {
        /// File being read.
        path: String,
        /// What was found instead.
        detail: String,
    },
    /// The zip container of a `.pth` file is damaged or unusual.
    #[error("{path} is not a valid PyTorch zip checkpoint: {detail}")]
    Zip {
        /// File being read.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// A zip entry uses compression; `torch.save` never compresses.
    #[error(
        "{path}: entry `{entry}` is compressed ({method}); PyTorch checkpoints store entries \
         uncompressed, so this file was repacked by another tool — extract and re-save it with torch.save"
    )]
    CompressedEntry {
        /// File being read.
        path: String,
        /// Zip entry name.
        entry: String,
        /// Compression method found.
        method: String,
    },
    /// A storage record referenced by the pickle is absent from the archive.
    #[error(
        "{path}: the checkpoint refers to tensor storage `{record}`, which is missing from the archive"
    )]
    MissingRecord {
        /// File being read.
        path: String,
        /// Zip entry name that was expected.
        record: String,
    },
    /// The checkpoint was written on a big-endian machine.
    #[error(
        "{path}: tensor data is stored in `{found}` byte order; only little-endian checkpoints are supported"
    )]
    ByteOrder {
        /// File being read.
        path: String,
        /// Content of the `byteorder` record.
        found: String,
    },
    /// The pickle uses an opcode this reader does not implement.
    #[error(
        "{path}: unsupported pickle opcode 0x{opcode:02x} at byte {offset} of data.pkl \
         (locosep reads checkpoints written by torch.save with the default pickle protocol)"
    )]
    UnsupportedOpcode {
        /// File being read.
        path: String,
        /// The opcode byte.
        opcode: u8,
        /// Offset inside the pickle.
        offset: usize,
    },
    /// The pickle references a Python global outside the allow-list.
    #[error(
        "refusing to load {path}: the checkpoint references `{module}.{name}`, which is not a tensor \
         or plain container; locosep never runs code from a checkpoint"
    )]
    ForbiddenGlobal {
        /// File being read.
        path: String,
        /// Python module of the global.
        module: String,
        /// Attribute name of the global.
        name: String,
    },
    /// The pickle is structurally invalid.
    #[error("{path}: malformed checkpoint pickle at byte {offset} of data.pkl: {detail}")]
    Pickle {
        /// File being read.
        path: String,
        /// Offset inside the pickle.
        offset: usize,
        /// What is wrong.
        detail: String,
    },
    /// Data ended before the declared size.
    #[error("{path} is truncated: {what} needs {expected} bytes but only {actual} are present")]
    Truncated {
        /// File being read.
        path: String,
        /// The item that is short.
        what: String,
        /// Bytes required.
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// A tensor uses a data type that cannot be converted to `f32`.
    #[error("{path}: tensor `{tensor}` has data type {dtype}, which locosep cannot convert to f32")]
    UnsupportedDtype {
        /// File being read.
        path: String,
        /// Tensor name (or storage key).
        tensor: String,
        /// The dtype found.
        dtype: String,
    },
    /// A tensor's shape/stride/offset does not fit its storage.
    #[error("{path}: invalid tensor: {detail}")]
    InvalidTensor {
        /// File being read.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// A safety cap was hit (the file is larger or deeper than any sane checkpoint).
    #[error("{path}: {what} exceeds the limit of {limit}; refusing to load it")]
    LimitExceeded {
        /// File being read.
        path: String,
        /// The quantity that is too large.
        what: String,
        /// The limit, human-readable.
        limit: String,
    },
    /// The checkpoint holds no recognisable model weights.
    #[error("{path}: no model weights found: {detail}")]
    NoStateDict {
        /// File being read.
        path: String,
        /// What was found instead.
        detail: String,
    },
    /// The safetensors file is invalid.
    #[error("{path} is not a valid safetensors file: {detail}")]
    Safetensors {
        /// File being read or written.
        path: String,
        /// What is wrong.
        detail: String,
    },
}
