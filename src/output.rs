//! Files the program writes. A regular file (or a new one) is replaced whole or not at all, keeping its
//! mode and owner; anything else a path can name (a FIFO, a device) is written straight into, since
//! replacing it would destroy it; a symbolic link is followed to what it names.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// How many symbolic links a path may pass through, as the kernel allows.
const MAX_LINKS: usize = 40;

/// Writes `bytes` to `path`: for a regular file or one that does not exist yet, into a temporary file beside
/// it that is then renamed over it, so an interrupted write leaves the old file (or none), never half a new
/// one; anything else is opened and written into.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let written = follow_links(path).and_then(|target| match std::fs::metadata(&target) {
        Ok(meta) if meta.is_file() => replace(&target, bytes, Some(&meta)),
        Ok(meta) if meta.is_dir() => Err(io::Error::from(io::ErrorKind::IsADirectory)),
        Ok(_) => write_into(&target, bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => replace(&target, bytes, None),
        Err(e) => Err(e),
    });
    written.map_err(|e| Error::io(path, "write", e))
}

/// Whether two paths name the same file (through links, hard ones included). A path that does not exist is
/// no file.
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        #[cfg(unix)]
        (Ok(a), Ok(b)) => {
            use std::os::unix::fs::MetadataExt;
            (a.dev(), a.ino()) == (b.dev(), b.ino())
        }
        #[cfg(not(unix))]
        (Ok(_), Ok(_)) => std::fs::canonicalize(a).ok() == std::fs::canonicalize(b).ok(),
        _ => false,
    }
}

/// The path a chain of symbolic links ends at (`path` itself where it is no link), whether or not that end
/// exists yet.
fn follow_links(path: &Path) -> io::Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&current)?;
                // A relative target is relative to the link's folder; joining an absolute one replaces it.
                current = match current.parent() {
                    Some(folder) => folder.join(target),
                    None => target,
                };
            }
            Ok(_) => return Ok(current),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(current),
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("too many levels of symbolic links"))
}

/// Writes a temporary file beside `target` and renames it over `target`, with the mode and owner of the
/// file it replaces.
fn replace(target: &Path, bytes: &[u8], existing: Option<&Metadata>) -> io::Result<()> {
    let name = target
        .file_name()
        .ok_or_else(|| io::Error::other("not a file name"))?
        .to_string_lossy();
    let folder = target.parent().unwrap_or(Path::new(""));
    remove_stale_partials(folder, &name);
    let temporary = folder.join(partial_name(&name, std::process::id()));
    let written = (|| {
        let mut file = File::create(&temporary)?;
        if let Some(meta) = existing {
            keep_owner_and_mode(&file, meta)?;
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, target)
    })();
    if written.is_err() {
        // What is left of the temporary file is of no use; failing to remove it changes nothing more.
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

fn keep_owner_and_mode(file: &File, meta: &Metadata) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // Only root may give a file to someone else; anyone else's replacement is already theirs.
        let _ = std::os::unix::fs::fchown(file, Some(meta.uid()), Some(meta.gid()));
    }
    file.set_permissions(meta.permissions())
}

/// The temporary file a save by process `pid` writes before it renames it to `name`.
fn partial_name(name: &str, pid: u32) -> String {
    format!(".{name}.{pid}.partial")
}

/// Removes the temporary files of saves to `name` whose process is gone (killed before it could rename or
/// remove them). Saves still running keep theirs.
fn remove_stale_partials(folder: &Path, name: &str) {
    let listed = if folder.as_os_str().is_empty() {
        Path::new(".")
    } else {
        folder
    };
    let Ok(entries) = std::fs::read_dir(listed) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let pid = file_name
            .to_str()
            .and_then(|f| f.strip_prefix('.'))
            .and_then(|f| f.strip_prefix(name))
            .and_then(|f| f.strip_prefix('.'))
            .and_then(|f| f.strip_suffix(".partial"))
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid
            && pid != std::process::id()
            && !process_alive(pid)
        {
            // Cleaning up is a courtesy: a partial that cannot be removed does not stop this save.
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether process `pid` is running. Where there is no /proc to ask, every process counts as running, so
/// that nothing is removed that might be in use.
fn process_alive(pid: u32) -> bool {
    !Path::new("/proc/self").exists() || Path::new("/proc").join(pid.to_string()).exists()
}

/// Opens `target`, which is not a regular file (a FIFO, a device), and writes into it.
fn write_into(target: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).open(target)?;
    file.write_all(bytes)?;
    file.flush()
}
