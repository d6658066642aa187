//! Checking a file's bytes against the digest its blob name promises, hashed as they arrive.

use ring::digest::{Context, SHA1_FOR_LEGACY_USE_ONLY, SHA256};

use super::names::{BlobId, DigestKind};

/// A running hash of one file, in the form its `BlobId` names. SHA-1 only where git uses it for small files,
/// which is what the hub's ETag for them is; its weakness is not ours to fix, and the weights use SHA-256.
pub struct Hasher {
    context: Context,
}

impl Hasher {
    /// Starts the hash of a file of `size` bytes (git's blob id hashes a header with the size first).
    pub fn new(kind: DigestKind, size: u64) -> Hasher {
        match kind {
            DigestKind::Sha256 => Hasher { context: Context::new(&SHA256) },
            DigestKind::GitSha1 => {
                let mut context = Context::new(&SHA1_FOR_LEGACY_USE_ONLY);
                context.update(format!("blob {size}\0").as_bytes());
                Hasher { context }
            }
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.context.update(bytes);
    }

    /// The hex digest of everything fed in.
    pub fn finish(self) -> String {
        self.context.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether everything fed in hashes to `blob`'s name.
    pub fn matches(self, blob: &BlobId) -> std::result::Result<(), String> {
        let got = self.finish();
        if got == blob.as_str() {
            Ok(())
        } else {
            Err(got)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_and_git_blob_ids_match_known_values() {
        // `printf 'hello\n' | sha256sum` and `printf 'hello\n' | git hash-object --stdin`.
        let mut h = Hasher::new(DigestKind::Sha256, 6);
        h.update(b"hel");
        h.update(b"lo\n");
        assert_eq!(h.finish(), "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
        let mut g = Hasher::new(DigestKind::GitSha1, 6);
        g.update(b"hello\n");
        assert_eq!(g.finish(), "ce013625030ba8dba906f756967f9e9ca394464a");
    }

    #[test]
    fn a_mismatch_reports_the_digest_of_what_arrived() {
        let blob = BlobId::parse("ce013625030ba8dba906f756967f9e9ca394464a").unwrap();
        let mut right = Hasher::new(DigestKind::GitSha1, 6);
        right.update(b"hello\n");
        assert!(right.matches(&blob).is_ok());
        let mut wrong = Hasher::new(DigestKind::GitSha1, 6);
        wrong.update(b"hellO\n");
        assert_ne!(wrong.matches(&blob).unwrap_err(), blob.as_str());
    }
}
