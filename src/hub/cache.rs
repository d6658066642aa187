//! One model's folder in the hub cache, laid out as `huggingface_hub` lays it out (the Python tools share it):
//!
//! ```text
//! <cache>/models--org--name/blobs/<digest>                  a file's bytes, named by their digest
//! <cache>/models--org--name/blobs/<digest>.incomplete       a download in progress (resumed from)
//! <cache>/models--org--name/snapshots/<commit>/<file>       a relative link to ../../blobs/<digest>
//! <cache>/models--org--name/refs/<revision>                 the commit a branch or tag pointed at
//! <cache>/.locks/models--org--name/<digest>.lock            held (an OS file lock) while a blob downloads
//! ```
//!
//! Every path here is built from checked names only (`Commit`, `BlobId`, a checked revision, the file names
//! the loader asks for), so nothing a server says can point outside the model's folder.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::names::{BlobId, Commit};

pub struct RepoCache {
    root: PathBuf,
    folder: String,
}

impl RepoCache {
    pub fn new(cache_dir: &Path, model: &str) -> RepoCache {
        let repo = hf_hub::Repo::new(model.to_string(), hf_hub::RepoType::Model);
        RepoCache { root: cache_dir.to_path_buf(), folder: repo.folder_name() }
    }

    fn repo_dir(&self) -> PathBuf {
        self.root.join(&self.folder)
    }

    pub fn blob(&self, blob: &BlobId) -> PathBuf {
        self.repo_dir().join("blobs").join(blob.as_str())
    }

    pub fn incomplete(&self, blob: &BlobId) -> PathBuf {
        self.repo_dir().join("blobs").join(format!("{blob}.incomplete"))
    }

    fn lock_path(&self, blob: &BlobId) -> PathBuf {
        self.root.join(".locks").join(&self.folder).join(format!("{blob}.lock"))
    }

    pub fn snapshot(&self, commit: &Commit) -> PathBuf {
        self.repo_dir().join("snapshots").join(commit.as_str())
    }

    /// `snapshots/<commit>/<file>`; `file` is one of the loader's own names, never a server's.
    pub fn pointer(&self, commit: &Commit, file: &str) -> PathBuf {
        debug_assert!(file.split('/').all(|s| !s.is_empty() && s != "." && s != ".."), "{file}");
        let mut path = self.snapshot(commit);
        path.extend(file.split('/'));
        path
    }

    fn ref_path(&self, revision: &str) -> PathBuf {
        let mut path = self.repo_dir().join("refs");
        path.extend(revision.split('/'));
        path
    }

    /// The commit `refs/<revision>` names, if it holds one. Anything else in it (an old client's unchecked
    /// header, a hand edit) counts as no ref at all, so it is never read as a path.
    pub fn read_ref(&self, revision: &str) -> Option<Commit> {
        Commit::parse(fs::read_to_string(self.ref_path(revision)).ok()?.trim())
    }

    /// Points `refs/<revision>` at `commit`, replacing the file whole (a reader never sees half of it).
    pub fn write_ref(&self, revision: &str, commit: &Commit) -> io::Result<()> {
        let path = self.ref_path(revision);
        let dir = path.parent().ok_or_else(|| io::Error::other("a ref path without a parent"))?;
        fs::create_dir_all(dir)?;
        let temp = dir.join(format!(".{}.{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("ref"), std::process::id()));
        File::create(&temp)?.write_all(commit.as_str().as_bytes())?;
        fs::rename(&temp, &path)
    }

    /// Takes the blob's download lock if no one holds it: `Ok(None)` when another download (this process or
    /// another, Python's included) holds it. An OS lock, so it ends with the process that holds it: a crash
    /// never leaves a blob locked. A file system without locks (some network mounts) goes on unlocked.
    pub fn try_lock(&self, blob: &BlobId) -> io::Result<Option<BlobLock>> {
        let path = self.lock_path(blob);
        fs::create_dir_all(path.parent().ok_or_else(|| io::Error::other("a lock path without a parent"))?)?;
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(BlobLock { _file: Some(file) })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => Ok(Some(BlobLock { _file: None })),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Links `snapshots/<commit>/<file>` to the blob with a relative link, as `huggingface_hub` does. Where
    /// links cannot be made (Windows without developer mode), a new blob is moved there and a shared one
    /// copied, as `huggingface_hub` does too.
    pub fn link(&self, commit: &Commit, file: &str, blob: &BlobId, new_blob: bool) -> io::Result<PathBuf> {
        let pointer = self.pointer(commit, file);
        let dir = pointer.parent().ok_or_else(|| io::Error::other("a pointer path without a parent"))?;
        fs::create_dir_all(dir)?;
        // From the pointer's folder up to the model's folder: one step for the commit, one per folder in `file`.
        let mut target = PathBuf::new();
        for _ in 0..file.split('/').count() {
            target.push("..");
        }
        target.push("..");
        target.push("blobs");
        target.push(blob.as_str());
        let temp = dir.join(format!(".{}.{}.link", blob, std::process::id()));
        let _ = fs::remove_file(&temp);
        match symlink(&target, &temp) {
            Ok(()) => fs::rename(&temp, &pointer)?,
            Err(_) if new_blob => fs::rename(self.blob(blob), &pointer)?,
            Err(_) => {
                fs::copy(self.blob(blob), &temp)?;
                fs::rename(&temp, &pointer)?;
            }
        }
        Ok(pointer)
    }
}

/// Held while a blob downloads; dropping it closes the file, which releases the OS lock.
pub struct BlobLock {
    _file: Option<File>,
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(windows)]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::windows::fs::symlink_file(target, link)
}

#[cfg(not(any(unix, windows)))]
fn symlink(_target: &Path, _link: &Path) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMIT: &str = "c0ffee0000000000000000000000000000000001";
    const BLOB: &str = "ce013625030ba8dba906f756967f9e9ca394464a";

    fn temp_cache(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("es-hub-cache-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn files_link_to_their_blob_from_any_depth_and_read_back() {
        let dir = temp_cache("link");
        let cache = RepoCache::new(&dir, "org/m");
        let (commit, blob) = (Commit::parse(COMMIT).unwrap(), BlobId::parse(BLOB).unwrap());
        fs::create_dir_all(cache.blob(&blob).parent().unwrap()).unwrap();
        fs::write(cache.blob(&blob), b"hello\n").unwrap();
        for file in ["config.json", "1_Pooling/config.json"] {
            let pointer = cache.link(&commit, file, &blob, false).unwrap();
            assert_eq!(pointer, dir.join("models--org--m/snapshots").join(COMMIT).join(file));
            assert_eq!(fs::read(&pointer).unwrap(), b"hello\n");
        }
        #[cfg(unix)]
        assert_eq!(
            fs::read_link(cache.pointer(&commit, "1_Pooling/config.json")).unwrap(),
            Path::new("../../../blobs").join(BLOB)
        );
        // Linking again (a second download of the same snapshot) replaces the link.
        cache.link(&commit, "config.json", &blob, false).unwrap();
        assert_eq!(fs::read(cache.pointer(&commit, "config.json")).unwrap(), b"hello\n");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refs_hold_commits_and_anything_else_reads_as_no_ref() {
        let dir = temp_cache("refs");
        let cache = RepoCache::new(&dir, "org/m");
        let commit = Commit::parse(COMMIT).unwrap();
        assert_eq!(cache.read_ref("main"), None);
        cache.write_ref("main", &commit).unwrap();
        cache.write_ref("refs/pr/1", &commit).unwrap();
        assert_eq!(cache.read_ref("main"), Some(commit.clone()));
        assert_eq!(cache.read_ref("refs/pr/1"), Some(commit));
        fs::write(dir.join("models--org--m/refs/main"), "../../../../tmp/x").unwrap();
        assert_eq!(cache.read_ref("main"), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_blob_lock_is_exclusive_and_released_when_dropped() {
        let dir = temp_cache("lock");
        let cache = RepoCache::new(&dir, "org/m");
        let blob = BlobId::parse(BLOB).unwrap();
        let held = cache.try_lock(&blob).unwrap().expect("free at first");
        assert!(cache.try_lock(&blob).unwrap().is_none(), "a second holder while the first holds it");
        drop(held);
        assert!(cache.try_lock(&blob).unwrap().is_some(), "free again once dropped");
        assert!(dir.join(".locks/models--org--m").join(format!("{BLOB}.lock")).is_file());
        fs::remove_dir_all(&dir).unwrap();
    }
}
