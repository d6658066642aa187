//! The names a hub answer carries (a commit id, a blob's digest) and the revision a caller asks for, checked
//! before any of them becomes part of a path. The cache stores a file as `blobs/<digest>` and links it from
//! `snapshots/<commit>/<file>`; a server that could choose those names could write anywhere.

use std::fmt;

use crate::error::{Error, ErrorCode, Result};

/// A git commit id: 40 lowercase hex digits, as the hub's `X-Repo-Commit` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit(String);

impl Commit {
    /// The commit a header names, or an `ERR_DOWNLOAD` naming the header and what it held.
    pub fn from_header(header: &str, value: Option<&str>) -> Result<Commit> {
        let value = value.ok_or_else(|| refused(format!("the answer has no {header} header")))?;
        Commit::parse(value.trim()).ok_or_else(|| {
            refused(format!("its {header} header is not a commit id (40 hex digits): {}", quoted(value)))
        })
    }

    /// `Some` for a 40-hex commit id (either case, kept lowercase).
    pub fn parse(value: &str) -> Option<Commit> {
        is_hex(value, 40).then(|| Commit(value.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Commit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a blob's name promises about its bytes, and so how they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestKind {
    /// 64 hex digits: the SHA-256 of the file (the hub's ETag for files stored in LFS, the weights).
    Sha256,
    /// 40 hex digits: git's blob id, the SHA-1 of `"blob <size>\0"` and the file (small files in git).
    GitSha1,
}

/// A blob's name in the cache: the hex digest of its bytes, taken from the ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobId {
    hex: String,
    kind: DigestKind,
}

impl BlobId {
    /// The blob an ETag header names (`"<hex>"`, or weak `W/"<hex>"`), or an `ERR_DOWNLOAD` naming the header.
    /// Anything but a SHA-256 or git SHA-1 hex digest is refused: it could not be checked, and it would be a
    /// file name chosen by the server.
    pub fn from_etag(header: &str, value: Option<&str>) -> Result<BlobId> {
        let value = value.ok_or_else(|| refused(format!("the answer has no {header} header")))?;
        let unquoted = value.trim();
        let unquoted = unquoted.strip_prefix("W/").unwrap_or(unquoted);
        let unquoted = unquoted.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(unquoted);
        BlobId::parse(unquoted).ok_or_else(|| {
            refused(format!(
                "its {header} header is not a SHA-256 (64 hex digits) or git SHA-1 (40 hex digits) digest: {}",
                quoted(value)
            ))
        })
    }

    pub fn parse(hex: &str) -> Option<BlobId> {
        let kind = if is_hex(hex, 64) {
            DigestKind::Sha256
        } else if is_hex(hex, 40) {
            DigestKind::GitSha1
        } else {
            return None;
        };
        Some(BlobId { hex: hex.to_ascii_lowercase(), kind })
    }

    pub fn as_str(&self) -> &str {
        &self.hex
    }

    pub fn kind(&self) -> DigestKind {
        self.kind
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex)
    }
}

/// Checks a revision the caller gave (a branch, tag, `refs/pr/N` or commit) before it names a file under
/// `refs/`: no empty, `.` or `..` segment, no backslash, no control character, not absolute.
pub fn check_revision(revision: &str) -> Result<()> {
    let bad_segment = revision.split('/').any(|s| s.is_empty() || s == "." || s == "..");
    let bad_char = revision.chars().any(|c| c == '\\' || c == ':' || c.is_control());
    if bad_segment || bad_char {
        return Err(Error::invalid_input(format!(
            "`revision` {revision:?} is not a branch, tag or commit name (no empty, '.' or '..' segments, \
             backslashes, colons or control characters)"
        )));
    }
    Ok(())
}

fn is_hex(value: &str, len: usize) -> bool {
    value.len() == len && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A server's value for a message: quoted, control characters escaped, cut at 120 characters.
pub fn quoted(value: &str) -> String {
    let mut text: String = value.chars().take(120).collect();
    if text.len() < value.len() {
        text.push('…');
    }
    format!("{text:?}")
}

/// The error for an answer that cannot be used; the caller adds which file and which server.
fn refused(message: String) -> Error {
    Error::new(ErrorCode::Download, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA256: &str = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db";
    const SHA1: &str = "fd1b291129c607e5d49799f87cb219b27f98acdf";

    #[test]
    fn commits_are_forty_hex_digits_and_nothing_else() {
        assert_eq!(Commit::parse(SHA1).unwrap().as_str(), SHA1);
        assert_eq!(Commit::parse(&SHA1.to_uppercase()).unwrap().as_str(), SHA1);
        for bad in ["../../../../tmp/x", "", "main", &SHA1[..39], &format!("{SHA1}0"), "g".repeat(40).as_str(), SHA256]
        {
            assert!(Commit::parse(bad).is_none(), "{bad:?}");
        }
        let err = Commit::from_header("X-Repo-Commit", Some("../../../../tmp/x")).unwrap_err();
        assert_eq!(err.code, ErrorCode::Download);
        assert!(err.message.contains("X-Repo-Commit") && err.message.contains("../../../../tmp/x"), "{}", err.message);
        let missing = Commit::from_header("X-Repo-Commit", None).unwrap_err();
        assert!(missing.message.contains("no X-Repo-Commit header"), "{}", missing.message);
    }

    #[test]
    fn etags_name_a_blob_only_when_they_are_a_digest() {
        let strong = BlobId::from_etag("ETag", Some(&format!("\"{SHA256}\""))).unwrap();
        assert_eq!((strong.as_str(), strong.kind()), (SHA256, DigestKind::Sha256));
        let weak = BlobId::from_etag("ETag", Some(&format!("W/\"{SHA1}\""))).unwrap();
        assert_eq!((weak.as_str(), weak.kind()), (SHA1, DigestKind::GitSha1));
        assert_eq!(BlobId::from_etag("ETag", Some(SHA1)).unwrap().as_str(), SHA1);
        for bad in [
            "\"../../../../../../tmp/x-model.safetensors\"",
            "\"/etc/passwd\"",
            "\"abc\"",
            &format!("\"{SHA256}/..\""),
            &format!("\"{}\"", &SHA256[..63]),
            "\"\"",
            &format!("\"..\\{SHA1}\""),
        ] {
            let err = BlobId::from_etag("X-Linked-Etag", Some(bad)).unwrap_err();
            assert_eq!(err.code, ErrorCode::Download, "{bad}");
            assert!(err.message.contains("X-Linked-Etag"), "{}", err.message);
        }
    }

    #[test]
    fn revisions_cannot_climb_out_of_refs() {
        for good in ["main", "v1.0", "refs/pr/1", SHA1, "feature/a-b_c"] {
            check_revision(good).unwrap();
        }
        for bad in ["", "..", "../x", "a/../../b", "/abs", "a//b", "a\\b", "c:x", "a\nb", "./a"] {
            assert_eq!(check_revision(bad).unwrap_err().code, ErrorCode::InvalidInput, "{bad:?}");
        }
    }

    #[test]
    fn quoted_values_are_escaped_and_bounded() {
        assert_eq!(quoted("a\nb"), "\"a\\nb\"");
        assert!(quoted(&"x".repeat(500)).chars().count() < 130);
    }
}
