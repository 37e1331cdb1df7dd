//! Durable history (`--history-file PATH`): every chat message appended to a file as one JSON
//! line, the same line the chat broadcasts.
//!
//! Writing is a thread of its own, so that a slow disk never stalls an event loop: the loops
//! hand lines over a bounded channel, and the thread writes them and calls `fsync` at most
//! [`COMMIT_EVERY`] after the first unsynced line (group commit: one sync covers every line
//! that came in meanwhile). So a message is on disk within 100 ms of being accepted; on a power
//! failure, what was accepted in the last 100 ms (at most) is lost. A crash of the process
//! alone loses nothing that reached the thread: the kernel has it.
//!
//! At start the file is read back: its last messages become the chat's history, and ids go on
//! from the last one. A last line cut short (the process died in the middle of a write) is
//! dropped and the file truncated to the line before it; any other line that is not a chat
//! message stops the start with an error that names it.

use super::protocol::ChatMessage;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest a written line waits for its `fsync`.
pub const COMMIT_EVERY: Duration = Duration::from_millis(100);
/// Lines that may wait for the writer; past it, new messages are refused (a stalled disk).
const QUEUE: usize = 64 * 1024;

/// The writer of one history file.
#[derive(Debug)]
pub(crate) struct Journal {
    lines: Option<SyncSender<String>>,
    thread: Option<JoinHandle<()>>,
    /// A write or sync failed: nothing more is accepted (the error went to the thread's end).
    failed: Arc<AtomicBool>,
}

/// What a history file held at start.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) journal: Journal,
    /// The last `keep` messages, oldest first.
    pub(crate) recent: VecDeque<ChatMessage>,
    /// The id after the last one in the file (1 for an empty file).
    pub(crate) next_id: u64,
}

/// Why a message could not be appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AppendError {
    /// The writer is this far behind.
    Full,
    /// A write to the file failed earlier.
    Failed,
}

/// Opens (or creates) the history file at `path`, reads it back, and starts its writer.
pub(crate) fn open(path: &Path, keep: usize) -> io::Result<Loaded> {
    let mut file = OpenOptions::new().read(true).append(true).create(true).open(path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let (recent, next_id, good_len) = read_back(&bytes, keep).map_err(|line| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: line {line} is not a chat message", path.display()),
        )
    })?;
    if good_len < bytes.len() {
        // A torn last line: drop it, so that the next line starts on a line of its own.
        file.set_len(good_len as u64)?;
    }
    let (tx, rx) = sync_channel(QUEUE);
    let failed = Arc::new(AtomicBool::new(false));
    let flag = failed.clone();
    let thread = std::thread::Builder::new()
        .name("rfc6455-history".into())
        .spawn(move || write_lines(file, rx, &flag))?;
    let journal = Journal { lines: Some(tx), thread: Some(thread), failed };
    Ok(Loaded { journal, recent, next_id })
}

/// The messages of a history file: the last `keep`, the next id, and how many bytes are whole
/// lines. `Err(n)`: line `n` (from 1) is not a message, and it is not a torn last line.
fn read_back(bytes: &[u8], keep: usize) -> Result<(VecDeque<ChatMessage>, u64, usize), usize> {
    let mut recent = VecDeque::new();
    let mut next_id = 1;
    let mut good_len = 0;
    let mut start = 0;
    let mut line_number = 0;
    while start < bytes.len() {
        line_number += 1;
        let end = bytes[start..].iter().position(|&b| b == b'\n').map(|i| start + i);
        let line = &bytes[start..end.unwrap_or(bytes.len())];
        let message = std::str::from_utf8(line).ok().and_then(ChatMessage::from_json);
        match (message, end) {
            (Some(message), Some(end)) => {
                next_id = next_id.max(message.id.saturating_add(1));
                if keep > 0 {
                    if recent.len() == keep {
                        recent.pop_front();
                    }
                    recent.push_back(message);
                }
                good_len = end + 1;
                start = end + 1;
            }
            // The last line, without its newline: the process stopped in the middle of it.
            (_, None) => break,
            (None, Some(_)) if line.is_empty() => {
                good_len = start + 1;
                start += 1;
            }
            (None, Some(_)) => return Err(line_number),
        }
    }
    Ok((recent, next_id, good_len))
}

impl Journal {
    /// Queues one message for the file.
    pub(crate) fn append(&self, message: &ChatMessage) -> Result<(), AppendError> {
        if self.failed.load(Ordering::Acquire) {
            return Err(AppendError::Failed);
        }
        let Some(lines) = &self.lines else { return Err(AppendError::Failed) };
        lines.try_send(message.to_json(false)).map_err(|e| match e {
            TrySendError::Full(_) => AppendError::Full,
            TrySendError::Disconnected(_) => AppendError::Failed,
        })
    }
}

impl Drop for Journal {
    /// Closes the queue and waits for the writer to write and sync what is left.
    fn drop(&mut self) {
        self.lines = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread: lines in, written at once, synced at most [`COMMIT_EVERY`] later.
fn write_lines(file: File, lines: Receiver<String>, failed: &AtomicBool) {
    let mut out = BufWriter::new(file);
    let mut unsynced_since: Option<Instant> = None;
    loop {
        let wait = match unsynced_since {
            Some(since) => COMMIT_EVERY.saturating_sub(since.elapsed()),
            None => Duration::from_secs(3600),
        };
        let ended = match lines.recv_timeout(wait) {
            Ok(line) => {
                let mut result = out.write_all(line.as_bytes()).and_then(|()| out.write_all(b"\n"));
                // Everything else already waiting goes in the same write and sync.
                while result.is_ok()
                    && let Ok(line) = lines.try_recv()
                {
                    result = out.write_all(line.as_bytes()).and_then(|()| out.write_all(b"\n"));
                }
                if result.is_err() {
                    failed.store(true, Ordering::Release);
                    return;
                }
                unsynced_since.get_or_insert_with(Instant::now);
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        let due = unsynced_since.is_some_and(|since| since.elapsed() >= COMMIT_EVERY);
        if (due || ended) && unsynced_since.is_some() {
            if out.flush().and_then(|()| out.get_ref().sync_data()).is_err() {
                failed.store(true, Ordering::Release);
                return;
            }
            unsynced_since = None;
        }
        if ended {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: u64) -> ChatMessage {
        ChatMessage { text: format!("m{id}"), name: "a".into(), ts: id, id }
    }

    fn lines(ids: &[u64]) -> Vec<u8> {
        ids.iter()
            .flat_map(|&id| format!("{}\n", message(id).to_json(false)).into_bytes())
            .collect()
    }

    #[test]
    fn a_file_reads_back_its_last_messages_and_next_id() {
        let bytes = lines(&[1, 2, 3, 4]);
        let (recent, next_id, good) = read_back(&bytes, 2).unwrap();
        assert_eq!(recent.iter().map(|m| m.id).collect::<Vec<_>>(), [3, 4]);
        assert_eq!((next_id, good), (5, bytes.len()));
        assert_eq!(read_back(b"", 10).unwrap().1, 1);
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_a_bad_one_elsewhere_refused() {
        let mut bytes = lines(&[1, 2]);
        let whole = bytes.len();
        bytes.extend_from_slice(br#"{"type":2,"message":"cut sh"#);
        let (recent, next_id, good) = read_back(&bytes, 10).unwrap();
        assert_eq!((recent.len(), next_id, good), (2, 3, whole));
        // Even a last line that parses, without its newline, counts as torn.
        let mut bytes = lines(&[1]);
        bytes.extend_from_slice(message(2).to_json(false).as_bytes());
        assert_eq!(read_back(&bytes, 10).unwrap().1, 2);
        let mut bytes = lines(&[1]);
        bytes.extend_from_slice(b"garbage\n");
        bytes.extend_from_slice(&lines(&[2]));
        assert_eq!(read_back(&bytes, 10), Err(2));
    }

    #[test]
    fn appended_messages_survive_a_reopen_and_ids_go_on() {
        let dir = std::env::temp_dir().join(format!("rfc6455-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("history.jsonl");
        let _ = std::fs::remove_file(&path);
        let loaded = open(&path, 10).unwrap();
        assert_eq!(loaded.next_id, 1);
        for id in 1..=3 {
            loaded.journal.append(&message(id)).unwrap();
        }
        drop(loaded);
        // A torn write after the last sync.
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"ty").unwrap();
        let loaded = open(&path, 2).unwrap();
        assert_eq!(loaded.next_id, 4);
        assert_eq!(loaded.recent.iter().map(|m| m.id).collect::<Vec<_>>(), [2, 3]);
        loaded.journal.append(&message(4)).unwrap();
        drop(loaded);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 4, "the torn line is gone: {text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
