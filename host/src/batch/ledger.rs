//! OUT, held for one run: the lock that makes this run its only writer, the repair that
//! drops a line cut short and the error lines to redo, the ids already answered, and an
//! appender that writes each result as one whole line and syncs within a second. Shared
//! by `moa batch` and `moa batch --via batch-api`.

use super::record::ResultLine;
use super::{BatchError, io, prepare_output};
use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// How often appended lines are synced to disk, at most: the most a power cut can lose.
const SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// OUT, locked and repaired, open for appending.
pub struct Ledger<'a> {
    path: PathBuf,
    _held: fd_lock::RwLockWriteGuard<'a, File>,
    /// Hashes ([`super::input::hash`]) of the ids OUT already answers.
    pub done: HashSet<u64>,
    appender: Appender,
    syncer: tokio::task::JoinHandle<()>,
}

/// Appends result lines to OUT; cheap to clone into each item's task.
#[derive(Clone)]
pub struct Appender {
    out: Arc<Mutex<File>>,
    dirty: Arc<AtomicBool>,
}

impl Appender {
    /// Appends `line` in one write: a kill leaves it whole or absent, and a cut tail is
    /// dropped by the next run's repair. On disk within [`SYNC_EVERY`].
    pub fn append(&self, line: &ResultLine) -> std::io::Result<()> {
        let mut bytes = line.to_json().into_bytes();
        bytes.push(b'\n');
        self.out.lock().map_err(|_| std::io::Error::other("poisoned"))?.write_all(&bytes)?;
        self.dirty.store(true, Ordering::Release);
        Ok(())
    }
}

impl<'a> Ledger<'a> {
    /// Takes `lock` (OUT's, from [`super::lock_output`]) for this run, refused when
    /// another batch holds it; repairs OUT and opens it for appending. Must run inside
    /// tokio: a task syncs what was appended.
    pub fn open(path: &Path, lock: &'a mut fd_lock::RwLock<File>) -> Result<Ledger<'a>, BatchError> {
        let held = lock.try_write().map_err(|_| BatchError::Locked {
            path: path.display().to_string(),
            lock: format!("{}.lock", path.display()),
        })?;
        let done = prepare_output(path)?;
        let out = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(io(path))?;
        let syncing = Arc::new(out.try_clone().map_err(io(path))?);
        let dirty = Arc::new(AtomicBool::new(false));
        let flag = dirty.clone();
        let syncer = tokio::spawn(async move {
            loop {
                tokio::time::sleep(SYNC_EVERY).await;
                if flag.swap(false, Ordering::AcqRel) {
                    let f = syncing.clone();
                    let _ = tokio::task::spawn_blocking(move || f.sync_data()).await;
                }
            }
        });
        let appender = Appender { out: Arc::new(Mutex::new(out)), dirty };
        Ok(Ledger { path: path.to_path_buf(), _held: held, done, appender, syncer })
    }

    /// An appender for this run's results.
    pub fn appender(&self) -> Appender {
        self.appender.clone()
    }

    /// Appends `line` (see [`Appender::append`]).
    pub fn append(&self, line: &ResultLine) -> Result<(), BatchError> {
        self.appender.append(line).map_err(io(&self.path))
    }

    /// Syncs what was appended and lets OUT go, saying if the sync failed.
    pub fn close(self) -> Result<(), BatchError> {
        self.syncer.abort();
        let out = self.appender.out.lock().map_err(|_| io(&self.path)(std::io::Error::other("poisoned")))?;
        out.sync_data().map_err(io(&self.path))
    }
}

impl Drop for Ledger<'_> {
    /// A run that ends early (an error, a bad input) still stops its sync task and syncs
    /// what it appended, best effort; [`Ledger::close`] is the way that reports failure.
    fn drop(&mut self) {
        self.syncer.abort();
        if let Ok(out) = self.appender.out.lock() {
            let _ = out.sync_data();
        }
    }
}
