//! Replay of pcap and pcapng files on pcap-parser's streaming readers.
//!
//! The parser is trusted for the contents of a record, not for its framing:
//! before every record the length fields are checked here, so a hostile
//! length can neither make the reader allocate nor leave it waiting forever
//! for bytes that will never fit in its buffer.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{
    InterfaceDescriptionBlock, LegacyPcapReader, PcapBlockOwned, PcapError, PcapNGReader,
};
use tapsentry_types::{Frame, LinkType, Timestamp};

use crate::{is_supported_link_type, CaptureError, CaptureWarning, FrameSource, KernelStats, Next};

/// The largest captured length accepted for one record (libpcap's own limit
/// for every link type the decoder handles). A record claiming more ends the
/// file with [`CaptureError::RecordTooLarge`].
pub const MAX_RECORD_LEN: u32 = 256 * 1024;

/// Room for a pcapng packet block's fixed fields and options on top of the
/// packet itself.
const MAX_BLOCK_LEN: u32 = MAX_RECORD_LEN + 64 * 1024;

/// Read buffer per file. Larger than any accepted record, so a record that
/// passed the length checks always fits.
const BUFFER_LEN: usize = 1 << 20;

/// Smallest read buffer: files shorter than [`BUFFER_LEN`] get a buffer just
/// big enough to hold them whole, which keeps opening many small files cheap.
const MIN_BUFFER_LEN: usize = 64 * 1024;

/// Refills that bring no new bytes before the reader is declared stuck.
const MAX_IDLE_REFILLS: u32 = 4;

/// pcapng interfaces per section. Each Interface Description Block costs
/// memory here, so a file made of nothing else must not grow without bound.
const MAX_INTERFACES: usize = 65_536;

const SHB_TYPE: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
/// The obsolete pcapng Packet Block, which pcap-parser leaves as unknown.
const OBSOLETE_PACKET_BLOCK: u32 = 2;

/// Replays capture files in the order given as one continuous capture.
///
/// pcap (both byte orders, microsecond and nanosecond magic, the "modified"
/// variant) and pcapng (any number of sections and interfaces, per-interface
/// link type, `if_tsresol` and `if_tsoffset`; Enhanced, Simple and obsolete
/// Packet Blocks) are recognised by magic number, whatever the file name says.
///
/// Damage inside a file ends that file only: frames before the damage are
/// yielded, the error goes to [`file_errors`](Self::file_errors) (and once to
/// [`warnings`](FrameSource::warnings)), and the next file is read.
pub struct FileSource {
    paths: Vec<PathBuf>,
    next_path: usize,
    current: Option<OpenFile>,
    file_errors: Vec<CaptureError>,
    warnings: Vec<CaptureWarning>,
    files_read: usize,
    skipped_unsupported: u64,
    last_ts: Timestamp,
    /// The contents of the only "file" of a source made by
    /// [`from_bytes`](FileSource::from_bytes), until it is opened.
    memory: Option<Vec<u8>>,
    /// Bytes read from the files so far (see [`bytes_read`](Self::bytes_read)).
    bytes_read: Arc<AtomicU64>,
}

impl FileSource {
    /// A source reading one capture from memory, as [`open`](Self::open)
    /// reads a file; `name` stands for the path in errors and warnings.
    /// The fuzz target of the reader calls it.
    pub fn from_bytes(name: impl Into<PathBuf>, bytes: Vec<u8>) -> Self {
        FileSource::reading(vec![name.into()], Some(bytes))
    }

    /// A source that has read nothing yet, of `paths` or of `memory`.
    fn reading(paths: Vec<PathBuf>, memory: Option<Vec<u8>>) -> Self {
        FileSource {
            paths,
            next_path: 0,
            current: None,
            file_errors: Vec::new(),
            warnings: Vec::new(),
            files_read: 0,
            skipped_unsupported: 0,
            last_ts: Timestamp::ZERO,
            memory,
            bytes_read: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Prepares to read `paths` in order; [`STDIN`] (`-`) reads standard
    /// input (pcap or pcapng, e.g. from `tcpdump -w -`).
    ///
    /// Every path is checked up front: the first one that does not exist, is
    /// a directory or cannot be opened is returned as an error. Contents are
    /// only looked at while reading, so a corrupt file shows up later in
    /// [`file_errors`](Self::file_errors), not here.
    pub fn open(paths: &[PathBuf]) -> Result<Self, CaptureError> {
        for path in paths.iter().filter(|p| p.as_os_str() != STDIN) {
            let file = File::open(path).map_err(|source| CaptureError::Open {
                path: path.clone(),
                source,
            })?;
            let meta = file.metadata().map_err(|source| CaptureError::Open {
                path: path.clone(),
                source,
            })?;
            if meta.is_dir() {
                return Err(CaptureError::Open {
                    path: path.clone(),
                    source: io::Error::new(io::ErrorKind::IsADirectory, "is a directory"),
                });
            }
        }
        Ok(FileSource::reading(paths.to_vec(), None))
    }

    /// The captures in directory `dir`, in time order: by the timestamp of
    /// their first packet (ties and files without packets by name, the
    /// latter first). Hidden files and subdirectories are left out; a file
    /// that is not a capture (wrong magic, unreadable) is left out and named
    /// in the returned warnings. Only each file's start is read here.
    ///
    /// Files are not merged packet by packet: a file that starts before the
    /// previous one ends is replayed after it, whole.
    pub fn captures_in(dir: &Path) -> Result<(Vec<PathBuf>, Vec<CaptureWarning>), CaptureError> {
        let open_err = |source| CaptureError::Open {
            path: dir.to_path_buf(),
            source,
        };
        let mut found = Vec::new();
        let mut warnings = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(open_err)? {
            let entry = entry.map_err(open_err)?;
            let path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if hidden || !path.is_file() {
                continue;
            }
            let mut one = FileSource::reading(vec![path.clone()], None);
            let first = match one.next_frame() {
                Ok(Next::Frame(f)) => Some(f.ts),
                Ok(Next::End) => None,
                Err(e) => {
                    warnings.push(CaptureWarning::FileError {
                        message: format!("{e}; not replayed"),
                    });
                    continue;
                }
                Ok(_) => None,
            };
            if let Some(e) = one.file_errors.first() {
                if one.files_read == 0 {
                    warnings.push(CaptureWarning::FileError {
                        message: format!("{e}; not replayed"),
                    });
                    continue;
                }
            }
            found.push((first, path));
        }
        found.sort();
        Ok((found.into_iter().map(|(_, p)| p).collect(), warnings))
    }

    /// A counter of the bytes read from the files so far, shared: take it
    /// before the source moves into the pipeline to show progress (bytes
    /// read against the files' sizes). The readers read ahead by up to one
    /// buffer (1 MiB), so it runs ahead of the frames delivered by as much.
    pub fn bytes_read(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.bytes_read)
    }

    /// Errors met so far, one per file that could not be read to its end.
    pub fn file_errors(&self) -> &[CaptureError] {
        &self.file_errors
    }

    /// Files recognised as captures so far (including ones whose reading
    /// later stopped on damage).
    pub fn files_read(&self) -> usize {
        self.files_read
    }

    /// Frames skipped because their interface's link type is not supported.
    pub fn skipped_unsupported_frames(&self) -> u64 {
        self.skipped_unsupported
    }

    fn record(&mut self, e: CaptureError) {
        self.warnings.push(CaptureWarning::FileError {
            message: e.to_string(),
        });
        self.file_errors.push(e);
    }
}

impl FrameSource for FileSource {
    fn next_frame(&mut self) -> Result<Next<'_>, CaptureError> {
        let meta = loop {
            let Some(cur) = self.current.as_mut() else {
                let Some(path) = self.paths.get(self.next_path).cloned() else {
                    return Ok(Next::End);
                };
                self.next_path += 1;
                let opened = match self.memory.take() {
                    Some(bytes) => OpenFile::from_bytes(&path, bytes, &self.bytes_read),
                    None if path.as_os_str() == STDIN => OpenFile::stdin(&self.bytes_read),
                    None => OpenFile::open(&path, &self.bytes_read),
                };
                match opened {
                    Ok(f) => {
                        self.files_read += 1;
                        self.current = Some(f);
                    }
                    Err(e) => self.record(e),
                }
                continue;
            };
            match cur.step(&mut self.skipped_unsupported, &mut self.warnings) {
                Ok(Step::Frame(m)) => break m,
                Ok(Step::Again) => {}
                Ok(Step::Eof) => self.current = None,
                Err(e) => {
                    self.current = None;
                    self.record(e);
                }
            }
        };
        // Simple Packet Blocks carry no time: they inherit the last one seen.
        let ts = meta.ts.unwrap_or(self.last_ts);
        self.last_ts = ts;
        let Some(cur) = self.current.as_ref() else {
            return Ok(Next::End);
        };
        let Some(data) = cur.reader.data().get(meta.start..meta.start + meta.len) else {
            return Err(CaptureError::Corrupt {
                path: cur.path.clone(),
                packets: cur.packets,
                detail: "internal error: frame outside the read buffer".into(),
            });
        };
        Ok(Next::Frame(Frame {
            ts,
            wire_len: meta.wire_len,
            link: meta.link,
            data,
        }))
    }

    fn kernel_stats(&mut self) -> Option<KernelStats> {
        None
    }

    fn skipped_frames(&self) -> u64 {
        self.skipped_unsupported_frames()
    }

    fn warnings(&mut self) -> Vec<CaptureWarning> {
        std::mem::take(&mut self.warnings)
    }
}

/// What a capture is read from: a file, memory or a pipe (stdin). Never
/// seeked, so a pipe reads like a file.
trait Input: Read + Send {}

impl<T: Read + Send> Input for T {}

/// The path that stands for standard input.
pub const STDIN: &str = "-";

/// An input that keeps the last I/O error, because pcap-parser reduces every
/// read failure to a bare `ReadError`.
struct TrackedFile {
    file: Box<dyn Input>,
    last_error: Arc<Mutex<Option<io::Error>>>,
    /// Bytes read from every file of the source so far (progress display).
    bytes_read: Arc<AtomicU64>,
}

impl Read for TrackedFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.file.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let copy = io::Error::new(e.kind(), e.to_string());
                    if let Ok(mut slot) = self.last_error.lock() {
                        *slot = Some(e);
                    }
                    return Err(copy);
                }
                Ok(n) => {
                    self.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
                    return Ok(n);
                }
            }
        }
    }
}

enum Reader {
    Legacy(LegacyPcapReader<TrackedFile>),
    Ng(PcapNGReader<TrackedFile>),
}

impl Reader {
    fn it(&mut self) -> &mut dyn PcapReaderIterator {
        match self {
            Reader::Legacy(r) => r,
            Reader::Ng(r) => r,
        }
    }

    fn data(&self) -> &[u8] {
        match self {
            Reader::Legacy(r) => r.data(),
            Reader::Ng(r) => r.data(),
        }
    }

    fn exhausted(&self) -> bool {
        match self {
            Reader::Legacy(r) => r.reader_exhausted(),
            Reader::Ng(r) => r.reader_exhausted(),
        }
    }
}

struct Iface {
    link: LinkType,
    supported: bool,
    warned: bool,
    /// Timestamp units per second (`if_tsresol`).
    units_per_sec: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset_secs: i64,
}

enum Format {
    Legacy {
        record_header_len: usize,
        big_endian: bool,
        nanos: bool,
        iface: Iface,
    },
    Ng {
        big_endian: bool,
        ifaces: Vec<Iface>,
    },
}

/// Where a frame sits in the reader's buffer, so the borrow of the parsed
/// block can end before the frame is handed out.
struct FrameMeta {
    ts: Option<Timestamp>,
    wire_len: u32,
    link: LinkType,
    start: usize,
    len: usize,
}

enum Step {
    Frame(FrameMeta),
    Again,
    Eof,
}

enum Action {
    Consume(usize),
    Frame(usize, FrameMeta),
    Skip(usize, Option<CaptureWarning>),
    Incomplete,
    Eof,
    ReadFailed,
    Fail(CaptureError),
}

struct OpenFile {
    path: PathBuf,
    reader: Reader,
    format: Format,
    /// Records (frames, skipped or not) read from this file.
    packets: u64,
    /// Length of the block behind the frame last handed out, consumed on the
    /// next call once the caller's borrow has ended.
    pending: usize,
    idle_refills: u32,
    io_error: Arc<Mutex<Option<io::Error>>>,
}

fn read_u32(d: &[u8], at: usize, big_endian: bool) -> Option<u32> {
    let b: [u8; 4] = d.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if big_endian {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    })
}

fn parser_error(path: &Path, packets: u64, e: &PcapError<&[u8]>) -> CaptureError {
    let path = path.to_path_buf();
    match e {
        PcapError::Eof | PcapError::UnexpectedEof | PcapError::Incomplete(_) => {
            CaptureError::Truncated { path, packets }
        }
        // Records are checked against the limit before parsing, and the
        // buffer holds the limit or the whole file, so a record that does not
        // fit runs past the end of the file.
        PcapError::BufferTooSmall => CaptureError::Truncated { path, packets },
        PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind) => CaptureError::Corrupt {
            path,
            packets,
            detail: format!("malformed record ({kind:?})"),
        },
        other => CaptureError::Corrupt {
            path,
            packets,
            detail: other.to_string(),
        },
    }
}

fn read_error(path: &Path, packets: u64, source: Option<io::Error>) -> CaptureError {
    CaptureError::Read {
        path: path.to_path_buf(),
        packets,
        source: source.unwrap_or_else(|| io::Error::other("read failed")),
    }
}

/// Units per second for an `if_tsresol` value: bit 7 clear is a power of
/// ten, set is a power of two. Out-of-range values fall back to the default
/// microseconds.
fn ts_units(resol: u8) -> u64 {
    let exp = u32::from(resol & 0x7f);
    let units = if resol & 0x80 == 0 {
        10u64.checked_pow(exp)
    } else {
        1u64.checked_shl(exp)
    };
    units.unwrap_or(1_000_000)
}

fn ts_from_units(ts: u64, units_per_sec: u64, offset_secs: i64) -> Timestamp {
    let micros = u128::from(ts) * 1_000_000 / u128::from(units_per_sec.max(1));
    let micros = i64::try_from(micros).unwrap_or(i64::MAX);
    Timestamp::from_micros(micros.saturating_add(offset_secs.saturating_mul(1_000_000)))
}

impl Iface {
    fn new(link: LinkType, units_per_sec: u64, offset_secs: i64) -> Self {
        Iface {
            link,
            supported: is_supported_link_type(link),
            warned: false,
            units_per_sec,
            offset_secs,
        }
    }

    fn from_idb(idb: &InterfaceDescriptionBlock<'_>, big_endian: bool) -> Self {
        // Options are read here rather than through pcap-parser's helpers,
        // which decode if_tsoffset as little-endian whatever the section says.
        let mut resol = 6u8;
        let mut offset = 0i64;
        for opt in &idb.options {
            match opt.code.0 {
                9 => {
                    if let Some(&r) = opt.value.first() {
                        resol = r;
                    }
                }
                14 => {
                    if let Some(b) = opt.value.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
                        offset = if big_endian {
                            i64::from_be_bytes(b)
                        } else {
                            i64::from_le_bytes(b)
                        };
                    }
                }
                _ => {}
            }
        }
        Iface::new(
            LinkType(u32::from(idb.linktype.0 as u16)),
            ts_units(resol),
            offset,
        )
    }

    /// Decides whether a frame on this interface is handed out; the first
    /// skipped frame raises the warning.
    fn admit(&mut self, path: &Path, interface: u32) -> Result<(), Option<CaptureWarning>> {
        if self.supported {
            return Ok(());
        }
        if self.warned {
            return Err(None);
        }
        self.warned = true;
        Err(Some(CaptureWarning::UnsupportedLinkType {
            source: path.display().to_string(),
            interface,
            link: self.link,
        }))
    }
}

impl OpenFile {
    fn open(path: &Path, counter: &Arc<AtomicU64>) -> Result<OpenFile, CaptureError> {
        let open_err = |source| CaptureError::Open {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(open_err)?;
        let file_len = file.metadata().map_err(open_err)?.len();
        Self::start(path, Box::new(file), file_len, counter)
    }

    /// Standard input: its length is unknown, so it gets the full buffer.
    fn stdin(counter: &Arc<AtomicU64>) -> Result<OpenFile, CaptureError> {
        Self::start(
            Path::new(STDIN),
            Box::new(io::stdin()),
            BUFFER_LEN as u64,
            counter,
        )
    }

    fn from_bytes(
        name: &Path,
        bytes: Vec<u8>,
        counter: &Arc<AtomicU64>,
    ) -> Result<OpenFile, CaptureError> {
        let len = bytes.len() as u64;
        Self::start(name, Box::new(io::Cursor::new(bytes)), len, counter)
    }

    fn start(
        path: &Path,
        mut file: Box<dyn Input>,
        file_len: u64,
        counter: &Arc<AtomicU64>,
    ) -> Result<OpenFile, CaptureError> {
        let buffer_len = usize::try_from(file_len.saturating_add(1))
            .unwrap_or(BUFFER_LEN)
            .clamp(MIN_BUFFER_LEN, BUFFER_LEN);
        // The readers parse the file header from their first read, so the
        // start of the input (up to MIN_BUFFER_LEN bytes, more than any sane
        // header) is read whole first and put back in front of the rest,
        // rather than seeked back to: a pipe cannot seek, and a pipe's
        // first read may return only a few bytes.
        let mut head = Vec::with_capacity(MIN_BUFFER_LEN);
        (&mut file)
            .take(MIN_BUFFER_LEN as u64)
            .read_to_end(&mut head)
            .map_err(|e| read_error(path, 0, Some(e)))?;
        let Some(&[m0, m1, m2, m3]) = head.get(..4) else {
            return Err(CaptureError::TooShort {
                path: path.to_path_buf(),
                len: head.len() as u64,
            });
        };
        let magic = [m0, m1, m2, m3];
        let file: Box<dyn Input> = Box::new(io::Cursor::new(head).chain(file));
        let io_error = Arc::new(Mutex::new(None));
        let tracked = TrackedFile {
            bytes_read: Arc::clone(counter),
            file,
            last_error: Arc::clone(&io_error),
        };
        let bad_header = |detail: String| CaptureError::BadHeader {
            path: path.to_path_buf(),
            detail,
        };
        match magic {
            // Microsecond and nanosecond magic in both byte orders, and the
            // little-endian "modified" (Kuznetzov) format.
            [0xd4, 0xc3, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0xc3, 0xd4]
            | [0x4d, 0x3c, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0x3c, 0x4d]
            | [0x34, 0xcd, 0xb2, 0xa1] => {
                let big_endian = magic[0] == 0xa1;
                let nanos = matches!(magic, [0x4d, 0x3c, ..] | [_, _, 0x3c, 0x4d]);
                let modified = magic == [0x34, 0xcd, 0xb2, 0xa1];
                let mut reader =
                    LegacyPcapReader::new(buffer_len, tracked).map_err(|e| match e {
                        PcapError::Incomplete(_) | PcapError::UnexpectedEof | PcapError::Eof => {
                            bad_header("pcap global header cut short".into())
                        }
                        other => bad_header(other.to_string()),
                    })?;
                let (offset, network) = match reader.next() {
                    Ok((offset, PcapBlockOwned::LegacyHeader(h))) => (offset, h.network.0),
                    Ok(_) => return Err(bad_header("pcap global header missing".into())),
                    Err(e) => return Err(bad_header(e.to_string())),
                };
                reader.consume(offset);
                // The upper bits of the link-type field carry FCS-length
                // flags; the link type proper is the low 16 bits.
                let link = LinkType((network as u32) & 0xffff);
                Ok(OpenFile {
                    path: path.to_path_buf(),
                    reader: Reader::Legacy(reader),
                    format: Format::Legacy {
                        record_header_len: if modified { 24 } else { 16 },
                        big_endian,
                        nanos,
                        iface: Iface::new(link, 1_000_000, 0),
                    },
                    packets: 0,
                    pending: 0,
                    idle_refills: 0,
                    io_error,
                })
            }
            SHB_TYPE => {
                let reader = PcapNGReader::new(buffer_len, tracked).map_err(|e| match e {
                    PcapError::Incomplete(_) | PcapError::UnexpectedEof | PcapError::Eof => {
                        bad_header("pcapng section header block cut short or too long".into())
                    }
                    other => bad_header(format!("invalid pcapng section header block ({other})")),
                })?;
                Ok(OpenFile {
                    path: path.to_path_buf(),
                    reader: Reader::Ng(reader),
                    format: Format::Ng {
                        big_endian: false,
                        ifaces: Vec::new(),
                    },
                    packets: 0,
                    pending: 0,
                    idle_refills: 0,
                    io_error,
                })
            }
            _ => Err(CaptureError::NotCapture {
                path: path.to_path_buf(),
                magic: u32::from_be_bytes(magic),
                hint: if magic[..2] == [0x1f, 0x8b] {
                    ", gzip-compressed: decompress it first"
                } else {
                    ""
                },
            }),
        }
    }

    fn corrupt(&self, detail: String) -> CaptureError {
        CaptureError::Corrupt {
            path: self.path.clone(),
            packets: self.packets,
            detail,
        }
    }

    /// Checks the framing of the record at the head of the buffer. Returns
    /// its full length when the header is in the buffer.
    fn precheck(&self) -> Result<Option<usize>, CaptureError> {
        let d = self.reader.data();
        match &self.format {
            Format::Legacy {
                record_header_len,
                big_endian,
                ..
            } => {
                let Some(caplen) = read_u32(d, 8, *big_endian) else {
                    return Ok(None);
                };
                if caplen > MAX_RECORD_LEN {
                    return Err(CaptureError::RecordTooLarge {
                        path: self.path.clone(),
                        packets: self.packets,
                        len: u64::from(caplen),
                        limit: u64::from(MAX_RECORD_LEN),
                    });
                }
                Ok(Some(record_header_len + caplen as usize))
            }
            Format::Ng { big_endian, .. } => {
                if d.len() < 8 {
                    return Ok(None);
                }
                let big_endian = if d.get(..4) == Some(&SHB_TYPE[..]) {
                    // A section header announces its own byte order.
                    match d.get(8..12) {
                        None => return Ok(None),
                        Some([0x1a, 0x2b, 0x3c, 0x4d]) => true,
                        Some([0x4d, 0x3c, 0x2b, 0x1a]) => false,
                        Some(_) => {
                            return Err(self.corrupt(
                                "section header block with an invalid byte-order magic".into(),
                            ))
                        }
                    }
                } else {
                    *big_endian
                };
                let Some(len) = read_u32(d, 4, big_endian) else {
                    return Ok(None);
                };
                if len < 12 || len % 4 != 0 {
                    return Err(self.corrupt(format!(
                        "block length {len} is not a multiple of 4 of at least 12"
                    )));
                }
                if len > MAX_BLOCK_LEN {
                    return Err(CaptureError::RecordTooLarge {
                        path: self.path.clone(),
                        packets: self.packets,
                        len: u64::from(len),
                        limit: u64::from(MAX_BLOCK_LEN),
                    });
                }
                let len = len as usize;
                if let Some(trailer) = read_u32(d, len - 4, big_endian) {
                    if trailer as usize != len {
                        return Err(self.corrupt(format!(
                            "block length fields disagree ({len} at the start, {trailer} at the end)"
                        )));
                    }
                }
                Ok(Some(len))
            }
        }
    }

    fn step(
        &mut self,
        skipped: &mut u64,
        warnings: &mut Vec<CaptureWarning>,
    ) -> Result<Step, CaptureError> {
        // Consumed blocks are never shifted out here: the parser's `consume`
        // moves the unread half of the buffer to its start each time half of
        // it has been read (4 % of a replay's samples, all memmove). `refill`
        // shifts anyway, and then only the record cut by the buffer's end.
        if self.pending > 0 {
            let n = std::mem::take(&mut self.pending);
            self.reader.it().consume_noshift(n);
        }
        let record_len = self.precheck()?;
        let (base, available) = {
            let d = self.reader.data();
            (d.as_ptr() as usize, d.len())
        };
        let action = match self.reader.it().next() {
            Ok((offset, block)) => classify(
                &mut self.format,
                &self.path,
                self.packets,
                offset,
                block,
                base,
            ),
            Err(PcapError::Eof) => Action::Eof,
            Err(PcapError::UnexpectedEof) if available == 0 => Action::Eof,
            Err(PcapError::Incomplete(_)) => Action::Incomplete,
            Err(PcapError::ReadError) => Action::ReadFailed,
            Err(e) => Action::Fail(parser_error(&self.path, self.packets, &e)),
        };
        match action {
            Action::Consume(n) => {
                self.reader.it().consume_noshift(n);
                Ok(Step::Again)
            }
            Action::Frame(n, meta) => {
                self.pending = n;
                self.packets += 1;
                Ok(Step::Frame(meta))
            }
            Action::Skip(n, warning) => {
                self.reader.it().consume_noshift(n);
                self.packets += 1;
                *skipped += 1;
                warnings.extend(warning);
                Ok(Step::Again)
            }
            Action::Incomplete => {
                if record_len.is_some_and(|len| available >= len) {
                    // The whole block is in the buffer, yet the parser wants
                    // more: its inner lengths overrun the block.
                    return Err(
                        self.corrupt("a length inside the record overruns the record".into())
                    );
                }
                if self.reader.it().refill().is_err() {
                    return Err(read_error(&self.path, self.packets, self.take_io_error()));
                }
                if self.reader.data().len() <= available && !self.reader.exhausted() {
                    self.idle_refills += 1;
                    if self.idle_refills > MAX_IDLE_REFILLS {
                        return Err(CaptureError::Stalled {
                            path: self.path.clone(),
                            packets: self.packets,
                        });
                    }
                } else {
                    self.idle_refills = 0;
                }
                Ok(Step::Again)
            }
            Action::Eof => Ok(Step::Eof),
            Action::ReadFailed => Err(read_error(&self.path, self.packets, self.take_io_error())),
            Action::Fail(e) => Err(e),
        }
    }

    fn take_io_error(&self) -> Option<io::Error> {
        self.io_error.lock().ok().and_then(|mut slot| slot.take())
    }
}

/// Turns one parsed block into what to do with it, updating the interface
/// table. Owns nothing borrowed, so the reader can be used again afterwards.
fn classify(
    format: &mut Format,
    path: &Path,
    packets: u64,
    offset: usize,
    block: PcapBlockOwned<'_>,
    base: usize,
) -> Action {
    let corrupt = |detail: String| {
        Action::Fail(CaptureError::Corrupt {
            path: path.to_path_buf(),
            packets,
            detail,
        })
    };
    let frame =
        |iface: &mut Iface, interface: u32, ts: Option<Timestamp>, data: &[u8], orig: u32| {
            if let Err(w) = iface.admit(path, interface) {
                return Action::Skip(offset, w);
            }
            let Some(start) = (data.as_ptr() as usize).checked_sub(base) else {
                return corrupt("internal error: record outside the read buffer".into());
            };
            // A record claiming fewer bytes on the wire than it captured is
            // damaged; the captured bytes are the better lower bound.
            let caplen = u32::try_from(data.len()).unwrap_or(u32::MAX);
            Action::Frame(
                offset,
                FrameMeta {
                    ts,
                    wire_len: orig.max(caplen),
                    link: iface.link,
                    start,
                    len: data.len(),
                },
            )
        };
    match (format, block) {
        (Format::Legacy { nanos, iface, .. }, PcapBlockOwned::Legacy(rec)) => {
            let frac = if *nanos {
                rec.ts_usec / 1000
            } else {
                rec.ts_usec
            };
            // Out-of-range fractions (a damaged record) carry into the
            // seconds instead of being rejected.
            let micros = i64::from(rec.ts_sec) * 1_000_000 + i64::from(frac);
            frame(
                iface,
                0,
                Some(Timestamp::from_micros(micros)),
                rec.data,
                rec.origlen,
            )
        }
        (Format::Legacy { .. }, _) => Action::Consume(offset),
        (Format::Ng { big_endian, ifaces }, PcapBlockOwned::NG(block)) => match block {
            Block::SectionHeader(shb) => {
                *big_endian = shb.big_endian();
                ifaces.clear();
                Action::Consume(offset)
            }
            Block::InterfaceDescription(idb) => {
                if ifaces.len() >= MAX_INTERFACES {
                    return corrupt(format!(
                        "more than {MAX_INTERFACES} interfaces in one section"
                    ));
                }
                ifaces.push(Iface::from_idb(&idb, *big_endian));
                Action::Consume(offset)
            }
            Block::EnhancedPacket(epb) => {
                let defined = ifaces.len();
                let Some(iface) = ifaces.get_mut(epb.if_id as usize) else {
                    return corrupt(format!(
                        "packet block refers to interface {} but the section defines {defined}",
                        epb.if_id
                    ));
                };
                let ts = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                let ts = ts_from_units(ts, iface.units_per_sec, iface.offset_secs);
                let data = epb.data.get(..epb.caplen as usize).unwrap_or(epb.data);
                frame(iface, epb.if_id, Some(ts), data, epb.origlen)
            }
            Block::SimplePacket(spb) => {
                let Some(iface) = ifaces.get_mut(0) else {
                    return corrupt("simple packet block in a section without interfaces".into());
                };
                let data = spb.data.get(..spb.origlen as usize).unwrap_or(spb.data);
                frame(iface, 0, None, data, spb.origlen)
            }
            Block::Unknown(ub) => {
                let block_type = if *big_endian {
                    ub.block_type.swap_bytes()
                } else {
                    ub.block_type
                };
                if block_type != OBSOLETE_PACKET_BLOCK {
                    return Action::Consume(offset);
                }
                // Interface id (u16), drops (u16), timestamp high and low,
                // captured length, original length, then the packet.
                let be = *big_endian;
                let fields = (
                    ub.data.get(..2),
                    read_u32(ub.data, 4, be),
                    read_u32(ub.data, 8, be),
                    read_u32(ub.data, 12, be),
                    read_u32(ub.data, 16, be),
                );
                let (Some(id), Some(high), Some(low), Some(caplen), Some(orig)) = fields else {
                    return corrupt("obsolete packet block too short".into());
                };
                let id = [id[0], id[1]];
                let id = u32::from(if be {
                    u16::from_be_bytes(id)
                } else {
                    u16::from_le_bytes(id)
                });
                let packet = ub.data.get(20..).unwrap_or_default();
                let Some(data) = packet.get(..caplen as usize) else {
                    return corrupt(
                        "obsolete packet block captured length overruns the block".into(),
                    );
                };
                let defined = ifaces.len();
                let Some(iface) = ifaces.get_mut(id as usize) else {
                    return corrupt(format!(
                        "packet block refers to interface {id} but the section defines {defined}"
                    ));
                };
                let ts = (u64::from(high) << 32) | u64::from(low);
                let ts = ts_from_units(ts, iface.units_per_sec, iface.offset_secs);
                frame(iface, id, Some(ts), data, orig)
            }
            _ => Action::Consume(offset),
        },
        (Format::Ng { .. }, _) => Action::Consume(offset),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(src: &mut FileSource) -> Vec<(i64, u32, Vec<u8>)> {
        let mut v = Vec::new();
        while let Next::Frame(f) = src.next_frame().unwrap() {
            v.push((f.ts.micros(), f.wire_len, f.data.to_vec()));
        }
        v
    }

    #[test]
    fn bytes_in_memory_read_like_the_file() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pcaps");
        for name in ["demo.pcap", "linktypes/pcapng-two-interfaces.pcapng"] {
            let path = root.join(name);
            let bytes = std::fs::read(&path).unwrap();
            let from_file = frames(&mut FileSource::open(std::slice::from_ref(&path)).unwrap());
            let from_mem = frames(&mut FileSource::from_bytes(name, bytes.clone()));
            assert!(!from_file.is_empty(), "{name}");
            assert_eq!(from_file, from_mem, "{name}");
            // Cut short: the same frames before the damage, and one error.
            let cut = &bytes[..bytes.len() - 7];
            let mut src = FileSource::from_bytes(name, cut.to_vec());
            assert_eq!(frames(&mut src).len(), from_file.len() - 1, "{name}");
            assert_eq!(src.file_errors().len(), 1, "{name}");
        }
        let mut src = FileSource::from_bytes("short", vec![0xd4, 0xc3]);
        assert!(frames(&mut src).is_empty());
        assert!(matches!(
            src.file_errors(),
            [CaptureError::TooShort { len: 2, .. }]
        ));
    }

    #[test]
    fn tsresol_units() {
        assert_eq!(ts_units(6), 1_000_000);
        assert_eq!(ts_units(9), 1_000_000_000);
        assert_eq!(ts_units(0), 1);
        assert_eq!(ts_units(0x80 | 10), 1024);
        assert_eq!(ts_units(0x80 | 63), 1 << 63);
        // Unrepresentable resolutions fall back to microseconds.
        assert_eq!(ts_units(20), 1_000_000);
        assert_eq!(ts_units(0x80 | 64), 1_000_000);
    }

    #[test]
    fn timestamps_from_units() {
        assert_eq!(ts_from_units(1_500_000, 1_000_000, 0).micros(), 1_500_000);
        assert_eq!(
            ts_from_units(1_500_000_000, 1_000_000_000, 10).micros(),
            11_500_000
        );
        assert_eq!(ts_from_units(3 * 1024 + 512, 1024, 0).micros(), 3_500_000);
        assert_eq!(ts_from_units(u64::MAX, 1, i64::MAX).micros(), i64::MAX);
    }
}
