//! 24-bit FLAC written frame by frame with flacenc.

use std::fs::File;
use std::io::{self, BufWriter, Write};

use flacenc::component::BitRepr;
use flacenc::error::Verify;
use flacenc::source::Fill;

use super::to_int;

/// `fLaC` plus the STREAMINFO block of a stream without frames (always 42 bytes).
pub(super) fn stream_header_bytes(
    header: &flacenc::component::Stream,
) -> Result<Vec<u8>, FlacError> {
    let mut sink = flacenc::bitsink::ByteSink::new();
    header
        .write(&mut sink)
        .map_err(|e| FlacError::Encode(format!("FLAC header serialisation failed: {e:?}")))?;
    Ok(sink.into_inner())
}

pub(super) enum FlacError {
    Io(io::Error),
    Encode(String),
}

/// 24-bit FLAC encoded frame by frame (flacenc's per-frame API) straight to the file.
///
/// The STREAMINFO header is written first as a placeholder and rewritten by
/// [`finish`](Self::finish) with the totals (sample count, MD5, frame sizes), which is how the
/// reference encoder works; its size never changes (42 bytes with the `fLaC` marker).
pub(super) struct FlacWriter {
    file: BufWriter<File>,
    config: flacenc::error::Verified<flacenc::config::Encoder>,
    /// Frame buffer and MD5/frame-number context, filled one block at a time.
    fill: (flacenc::source::FrameBuf, flacenc::source::Context),
    /// Interleaved 24-bit samples not yet encoded (fewer than one block between calls).
    pending: Vec<i32>,
    header: flacenc::component::Stream,
    block_size: usize,
    channels: usize,
}

impl FlacWriter {
    pub(super) fn new(
        mut file: BufWriter<File>,
        rate: u32,
        channels: usize,
    ) -> Result<Self, String> {
        let config = flacenc::config::Encoder::default()
            .into_verified()
            .map_err(|e| format!("invalid FLAC encoder configuration: {e:?}"))?;
        let block_size = config.block_size;
        let header = flacenc::component::Stream::new(rate as usize, channels, 24)
            .map_err(|e| format!("FLAC stream header: {e}"))?;
        let fill = (
            flacenc::source::FrameBuf::with_size(channels, block_size)
                .map_err(|e| format!("FLAC frame buffer: {e}"))?,
            flacenc::source::Context::new(24, channels),
        );
        let bytes = stream_header_bytes(&header).map_err(|e| match e {
            FlacError::Io(e) => e.to_string(),
            FlacError::Encode(d) => d,
        })?;
        file.write_all(&bytes).map_err(|e| e.to_string())?;
        Ok(Self {
            file,
            config,
            fill,
            pending: Vec::with_capacity(block_size * channels),
            header,
            block_size,
            channels,
        })
    }

    pub(super) fn write<S: AsRef<[f32]>>(
        &mut self,
        block: &[S],
        n: usize,
    ) -> Result<(), FlacError> {
        let per_block = self.block_size * self.channels;
        for i in 0..n {
            for ch in block {
                self.pending.push(to_int(ch.as_ref()[i], 8_388_607.0));
            }
            if self.pending.len() == per_block {
                self.encode_pending()?;
            }
        }
        Ok(())
    }

    fn encode_pending(&mut self) -> Result<(), FlacError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.fill
            .fill_interleaved(&self.pending)
            .map_err(|e| FlacError::Encode(format!("FLAC input: {e}")))?;
        self.pending.clear();
        let frame_no = self.fill.1.current_frame_number().unwrap_or(0);
        let frame = flacenc::encode_fixed_size_frame(
            &self.config,
            &self.fill.0,
            frame_no,
            self.header.stream_info(),
        )
        .map_err(|e| FlacError::Encode(format!("FLAC encoding failed: {e}")))?;
        self.header.stream_info_mut().update_frame_info(&frame);
        let mut sink = flacenc::bitsink::ByteSink::new();
        frame
            .write(&mut sink)
            .map_err(|e| FlacError::Encode(format!("FLAC serialisation failed: {e:?}")))?;
        self.file.write_all(sink.as_slice()).map_err(FlacError::Io)
    }

    /// Encodes the last (short) block, rewrites the header and returns the file.
    pub(super) fn finish(mut self) -> Result<File, FlacError> {
        use std::io::{Seek, SeekFrom};
        self.encode_pending()?;
        let (block_size, total, md5) = (
            self.block_size,
            self.fill.1.total_samples(),
            self.fill.1.md5_digest(),
        );
        let info = self.header.stream_info_mut();
        // flacenc lowers STREAMINFO's min block size to the (shorter) last block, which the
        // FLAC spec excludes for fixed-blocksize streams ("excluding the last block"). Decoders
        // that check it strictly (symphonia) then reject every frame header. Restore
        // min = max = block size, as the reference encoder writes.
        info.set_block_sizes(block_size, block_size)
            .map_err(|e| FlacError::Encode(format!("FLAC block size: {e}")))?;
        info.set_md5_digest(&md5);
        info.set_total_samples(total);
        if total == 0 {
            // No frame: frame sizes stay "unknown" (0), as for an empty stream.
            info.set_frame_sizes(0, 0)
                .map_err(|e| FlacError::Encode(format!("FLAC frame sizes: {e}")))?;
        }
        let bytes = stream_header_bytes(&self.header)?;
        let mut file = self
            .file
            .into_inner()
            .map_err(|e| FlacError::Io(e.into_error()))?;
        file.seek(SeekFrom::Start(0)).map_err(FlacError::Io)?;
        file.write_all(&bytes).map_err(FlacError::Io)?;
        Ok(file)
    }
}
