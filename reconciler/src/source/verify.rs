//! Signature verification of the revision a [`super::Source`] reads (`--verify-signatures`),
//! like Flux's `spec.verify`: before a single file of a revision is read, the object named
//! must carry a good signature by a trusted key, or the revision is refused with an
//! [`Unverified`] error naming the object and the reason.
//!
//! - What is verified: an annotated tag's own signature when the revision names one (as Flux
//!   does for tags), else the commit's (`gpgsig` header, read with git2's
//!   `extract_signature`). A lightweight tag is just a name for its commit.
//! - Trust: SSH keys in an allowed-signers file (the format of `ssh-keygen -Y verify` and git's
//!   `gpg.ssh.allowedSignersFile`) and armored OpenPGP public keys. Both are checked in-process
//!   (`ssh-key`, `pgp`): no gpg, no ssh-keygen.
//! - SSH, as git does it: the signature's namespace must be `git`; the signing key must be
//!   listed; the line's principals are not matched against the committer (git does not either)
//!   but name the signer in the log. `namespaces="…"` restricts a key to the namespaces listed
//!   (with `*` and `?` patterns), `valid-after` / `valid-before` (`YYYYMMDD[HHMM[SS]]`, read as
//!   UTC) are compared with the commit's (or tag's) time, as git passes it to ssh-keygen.
//!   `cert-authority` lines (SSH certificates) are refused when the file is read.
//! - OpenPGP: the signature's issuer must be a trusted primary key or one of its subkeys whose
//!   binding signatures verify; a key with a revocation signature is not trusted. Key expiry
//!   is not checked (rPGP leaves that policy to its users): the file says who is trusted.

use anyhow::{Context, Result, anyhow, bail};
use git2::{Oid, Repository};
use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::types::KeyDetails;
use ssh_key::{HashAlg, PublicKey, SshSig};
use std::fmt;
use std::path::{Path, PathBuf};

/// The namespace git signs commits and tags in (`ssh-keygen -Y sign -n git`).
const GIT_NAMESPACE: &str = "git";

const SSH_ARMOR: &str = "-----BEGIN SSH SIGNATURE-----";
const PGP_ARMOR: &str = "-----BEGIN PGP SIGNATURE-----";
const X509_ARMOR: &str = "-----BEGIN SIGNED MESSAGE-----";

/// The keys whose signatures are trusted.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// SSH signers, with the file they came from.
    ssh: Vec<AllowedSigner>,
    ssh_file: Option<PathBuf>,
    /// OpenPGP keys, with the file they came from.
    pgp: Vec<SignedPublicKey>,
    pgp_file: Option<PathBuf>,
}

/// One line of an allowed-signers file.
#[derive(Debug, Clone)]
struct AllowedSigner {
    principals: String,
    key: PublicKey,
    /// `namespaces="…"`: the patterns, when restricted.
    namespaces: Option<Vec<String>>,
    /// `valid-after` / `valid-before`, Unix seconds.
    valid_after: Option<i64>,
    valid_before: Option<i64>,
}

impl Trust {
    /// Reads the trusted keys: an allowed-signers file, armored OpenPGP keys, or both (at
    /// least one).
    pub fn load(allowed_signers: Option<&Path>, trusted_keys: Option<&Path>) -> Result<Trust> {
        if allowed_signers.is_none() && trusted_keys.is_none() {
            bail!(
                "--verify-signatures needs the keys to trust: --allowed-signers FILE (SSH) and/or --trusted-keys FILE (OpenPGP)"
            );
        }
        let mut trust = Trust::default();
        if let Some(path) = allowed_signers {
            let text = read(path, "allowed signers")?;
            trust.ssh = parse_allowed_signers(&text)
                .with_context(|| format!("in the allowed signers {}", path.display()))?;
            trust.ssh_file = Some(path.to_path_buf());
        }
        if let Some(path) = trusted_keys {
            let text = read(path, "trusted keys")?;
            trust.pgp = parse_trusted_keys(&text)
                .with_context(|| format!("in the trusted keys {}", path.display()))?;
            trust.pgp_file = Some(path.to_path_buf());
        }
        Ok(trust)
    }

    /// Checks the signature of what `rev` names in `repo` (an annotated tag, else commit
    /// `commit`, which `rev` resolved to). Returns who signed; an [`Unverified`] error
    /// (inside the `anyhow` chain) when the object is unsigned, badly signed or signed by an
    /// untrusted key.
    pub fn verify(&self, repo: &Repository, rev: &str, commit: Oid) -> Result<String> {
        let object = Signed::of(repo, rev, commit);
        let Some((signature, data)) = object.signature(repo)? else {
            return Err(object
                .refuse(
                    "is not signed",
                    "sign it with a trusted key (git commit -S, or git tag -s for a tag)",
                )
                .into());
        };
        let when = object.time(repo)?;
        let signer = if signature.starts_with(SSH_ARMOR) {
            self.verify_ssh(&object, &signature, &data, when)?
        } else if signature.starts_with(PGP_ARMOR) {
            self.verify_pgp(&object, &signature, &data)?
        } else {
            let what = if signature.starts_with(X509_ARMOR) {
                "an X.509 (gpgsm) signature"
            } else {
                "a signature of a kind ward does not know"
            };
            return Err(object
                .refuse(
                    &format!("carries {what}"),
                    "ward verifies SSH and OpenPGP signatures; sign with one of those",
                )
                .into());
        };
        Ok(format!("{} signed by {signer}", object.subject()))
    }

    fn verify_ssh(&self, object: &Signed, armored: &str, data: &[u8], when: i64) -> Result<String> {
        let sig = SshSig::from_pem(armored).map_err(|e| {
            object.refuse(
                &format!("has an unreadable SSH signature ({e})"),
                "sign it again",
            )
        })?;
        let fingerprint = sig.public_key().fingerprint(HashAlg::Sha256);
        let listed: Vec<&AllowedSigner> = self
            .ssh
            .iter()
            .filter(|s| s.key.key_data() == sig.public_key())
            .collect();
        if listed.is_empty() {
            return Err(object
                .refuse(
                    &format!(
                        "is signed by SSH key {fingerprint} which is not in the allowed signers{}",
                        in_file(self.ssh_file.as_deref(), "--allowed-signers")
                    ),
                    "add the key to the allowed signers if you trust it, or sign with a listed key",
                )
                .into());
        }
        let Some(signer) = listed.iter().find(|s| s.permits(when)) else {
            let why = listed[0].refusal(when);
            return Err(object
                .refuse(
                    &format!("is signed by SSH key {fingerprint}, which the allowed signers {why}"),
                    "change the key's options in the allowed signers, or sign with another key",
                )
                .into());
        };
        signer.key.verify(GIT_NAMESPACE, data, &sig).map_err(|e| {
            object.refuse(
                &format!("has a bad SSH signature by key {fingerprint} ({e})"),
                "the commit or its signature was altered; do not apply it",
            )
        })?;
        Ok(format!("{} (SSH key {fingerprint})", signer.principals))
    }

    fn verify_pgp(&self, object: &Signed, armored: &str, data: &[u8]) -> Result<String> {
        let (sig, _) = DetachedSignature::from_string(armored).map_err(|e| {
            object.refuse(
                &format!("has an unreadable OpenPGP signature ({e})"),
                "sign it again",
            )
        })?;
        let issuer = issuer(&sig);
        for key in &self.pgp {
            let Some(signing) = matching_key(key, &sig) else {
                continue;
            };
            let user = key
                .details
                .users
                .first()
                .map(|u| String::from_utf8_lossy(u.id.id()).into_owned())
                .unwrap_or_default();
            return match signing.verify(&sig.signature, data) {
                Ok(()) => Ok(format!("{user} (OpenPGP key {issuer})")),
                Err(e) => Err(object
                    .refuse(
                        &format!("has a bad OpenPGP signature by key {issuer} ({e})"),
                        "the commit or its signature was altered; do not apply it",
                    )
                    .into()),
            };
        }
        Err(object
            .refuse(
                &format!(
                    "is signed by OpenPGP key {issuer} which is not among the trusted keys{}",
                    in_file(self.pgp_file.as_deref(), "--trusted-keys")
                ),
                "add the public key to the trusted keys if you trust it, or sign with a trusted key",
            )
            .into())
    }
}

fn read(path: &Path, what: &str) -> Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the {what} {}", path.display()))
}

/// ` (FILE)`, or that none were given and which flag gives them.
fn in_file(file: Option<&Path>, flag: &str) -> String {
    match file {
        Some(f) => format!(" ({})", f.display()),
        None => format!(" (none were given: pass {flag})"),
    }
}

/// A key of `key` (the primary or a subkey) that the signature names as its issuer, when the
/// key is usable: not revoked, its subkey bound to it.
fn matching_key<'k>(key: &'k SignedPublicKey, sig: &DetachedSignature) -> Option<Signer<'k>> {
    if !key.details.revocation_signatures.is_empty() {
        return None;
    }
    let names = |fp: pgp::types::Fingerprint, id: pgp::types::KeyId| {
        sig.signature.issuer_fingerprint().contains(&&fp)
            || sig.signature.issuer_key_id().contains(&&id)
    };
    if names(
        key.primary_key.fingerprint(),
        key.primary_key.legacy_key_id(),
    ) {
        return Some(Signer::Primary(&key.primary_key));
    }
    key.public_subkeys
        .iter()
        .find(|s| names(s.key.fingerprint(), s.key.legacy_key_id()))
        .filter(|s| s.verify_bindings(&key.primary_key).is_ok())
        .map(|s| Signer::Subkey(&s.key))
}

/// The key that made a signature.
enum Signer<'k> {
    Primary(&'k pgp::packet::PublicKey),
    Subkey(&'k pgp::packet::PublicSubkey),
}

impl Signer<'_> {
    fn verify(&self, sig: &pgp::packet::Signature, data: &[u8]) -> pgp::errors::Result<()> {
        match self {
            Signer::Primary(k) => sig.verify(k, data),
            Signer::Subkey(k) => sig.verify(k, data),
        }
    }
}

/// The signature's issuer: its fingerprint, else its key id, in hex.
fn issuer(sig: &DetachedSignature) -> String {
    if let Some(fp) = sig.signature.issuer_fingerprint().first() {
        return format!("{fp:X}");
    }
    sig.signature
        .issuer_key_id()
        .first()
        .map_or_else(|| "(no issuer named)".to_owned(), hex::encode_upper)
}

/// The object whose signature counts.
enum Signed {
    Commit(Oid),
    Tag { name: String, id: Oid, commit: Oid },
}

impl Signed {
    /// What `rev` names: an annotated tag that peels to `commit`, else the commit.
    fn of(repo: &Repository, rev: &str, commit: Oid) -> Signed {
        let named = repo.revparse_single(rev).ok();
        let tag = named
            .as_ref()
            .and_then(|o| o.as_tag())
            .filter(|t| t.as_object().peel_to_commit().map(|c| c.id()).ok() == Some(commit));
        match tag {
            Some(t) => Signed::Tag {
                name: t.name().unwrap_or(rev).to_owned(),
                id: t.id(),
                commit,
            },
            None => Signed::Commit(commit),
        }
    }

    fn subject(&self) -> String {
        match self {
            Signed::Commit(c) => format!("commit {c}"),
            Signed::Tag { name, id, commit } => format!("tag {name} ({id}, of commit {commit})"),
        }
    }

    fn refuse(&self, reason: &str, hint: &str) -> Unverified {
        Unverified {
            subject: self.subject(),
            commit: match self {
                Signed::Commit(c) | Signed::Tag { commit: c, .. } => c.to_string(),
            },
            reason: reason.to_owned(),
            hint: hint.to_owned(),
        }
    }

    /// The armored signature and the bytes it signs, or `None` when unsigned.
    fn signature(&self, repo: &Repository) -> Result<Option<(String, Vec<u8>)>> {
        match self {
            Signed::Commit(c) => match repo.extract_signature(c, None) {
                Ok((sig, data)) => Ok(Some((
                    String::from_utf8_lossy(&sig).into_owned(),
                    data.to_vec(),
                ))),
                Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
                Err(e) => bail!("cannot read the signature of commit {c}: {}", e.message()),
            },
            Signed::Tag { id, .. } => {
                let odb = repo.odb()?;
                let raw = odb.read(*id)?;
                Ok(split_tag(raw.data()))
            }
        }
    }

    /// When the object was made (committer or tagger time), in Unix seconds.
    fn time(&self, repo: &Repository) -> Result<i64> {
        Ok(match self {
            Signed::Commit(c) => repo.find_commit(*c)?.committer().when().seconds(),
            Signed::Tag { id, commit, .. } => match repo.find_tag(*id)?.tagger() {
                Some(t) => t.when().seconds(),
                None => repo.find_commit(*commit)?.committer().when().seconds(),
            },
        })
    }
}

/// A tag object split as git splits it: the signature starts at the last line that opens an
/// armored signature; everything before it is what was signed.
fn split_tag(raw: &[u8]) -> Option<(String, Vec<u8>)> {
    let mut start = None;
    let mut at = 0;
    for line in raw.split_inclusive(|b| *b == b'\n') {
        if [SSH_ARMOR, PGP_ARMOR, X509_ARMOR]
            .iter()
            .any(|m| line.starts_with(m.as_bytes()))
        {
            start = Some(at);
        }
        at += line.len();
    }
    let start = start?;
    Some((
        String::from_utf8_lossy(&raw[start..]).into_owned(),
        raw[..start].to_vec(),
    ))
}

/// A revision refused by `--verify-signatures`. Its `Display` names the object and the reason,
/// then what to do.
#[derive(Debug, Clone)]
pub struct Unverified {
    /// `commit <id>`, or `tag <name> (<id>, of commit <id>)`.
    pub subject: String,
    /// The full commit id of the revision.
    pub commit: String,
    /// Why, after the subject: "is not signed".
    pub reason: String,
    /// What to do about it.
    pub hint: String,
}

impl fmt::Display for Unverified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}; refused (--verify-signatures), nothing was read or applied; {}",
            self.subject, self.reason, self.hint
        )
    }
}

impl std::error::Error for Unverified {}

impl AllowedSigner {
    /// Whether this line lets its key sign git objects made at `when`.
    fn permits(&self, when: i64) -> bool {
        self.refusal(when).is_empty()
    }

    /// Why the line does not allow a git signature at `when` (empty when it does).
    fn refusal(&self, when: i64) -> String {
        if let Some(ns) = &self.namespaces
            && !ns.iter().any(|p| glob(p, GIT_NAMESPACE))
        {
            return format!(
                "allow only for namespaces \"{}\", not \"git\"",
                ns.join(",")
            );
        }
        let at = |t: i64| {
            jiff::Timestamp::from_second(t).map_or_else(|_| t.to_string(), |t| t.to_string())
        };
        if let Some(after) = self.valid_after
            && when < after
        {
            return format!(
                "accept only from {} (the object is from {})",
                at(after),
                at(when)
            );
        }
        if let Some(before) = self.valid_before
            && when > before
        {
            return format!(
                "accept only until {} (the object is from {})",
                at(before),
                at(when)
            );
        }
        String::new()
    }
}

/// Parses an allowed-signers file: `principals [options] keytype base64 [comment]` per line,
/// `#` comments and blank lines skipped.
fn parse_allowed_signers(text: &str) -> Result<Vec<AllowedSigner>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(parse_signer(line).with_context(|| format!("line {}", n + 1))?);
    }
    if out.is_empty() {
        bail!("no signer is listed (each line: principals [options] keytype key)");
    }
    Ok(out)
}

fn parse_signer(line: &str) -> Result<AllowedSigner> {
    let fields = split_fields(line);
    let [principals, rest @ ..] = fields.as_slice() else {
        bail!("an empty line");
    };
    // Options come before the key type when the next field is not one.
    let (options, key) = match rest {
        [first, key @ ..] if !is_key_type(first) => (Some(*first), key),
        key => (None, key),
    };
    let key = PublicKey::from_openssh(&key.join(" ")).map_err(|e| {
        anyhow!(
            "cannot read the public key ({e}); expected: principals [options] keytype base64-key"
        )
    })?;
    let mut signer = AllowedSigner {
        principals: principals.trim_matches('"').to_owned(),
        key,
        namespaces: None,
        valid_after: None,
        valid_before: None,
    };
    for opt in options.map(split_options).unwrap_or_default() {
        let (name, value) = opt.split_once('=').unwrap_or((opt.as_str(), ""));
        let value = value.trim_matches('"');
        match name.to_ascii_lowercase().as_str() {
            "namespaces" => {
                signer.namespaces = Some(value.split(',').map(str::to_owned).collect());
            }
            "valid-after" => signer.valid_after = Some(parse_time(value)?),
            "valid-before" => signer.valid_before = Some(parse_time(value)?),
            "cert-authority" => bail!(
                "cert-authority (SSH certificates) is not supported; list the signers' own keys"
            ),
            other => bail!("unknown option \"{other}\""),
        }
    }
    Ok(signer)
}

fn is_key_type(s: &str) -> bool {
    s.starts_with("ssh-") || s.starts_with("ecdsa-") || s.starts_with("sk-")
}

/// Splits on spaces outside double quotes.
fn split_fields(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (None, false);
    for (i, c) in line.char_indices() {
        match c {
            '"' => {
                quoted = !quoted;
                start.get_or_insert(i);
            }
            c if c.is_whitespace() && !quoted => {
                if let Some(s) = start.take() {
                    out.push(&line[s..i]);
                }
            }
            _ => {
                start.get_or_insert(i);
            }
        }
    }
    if let Some(s) = start {
        out.push(&line[s..]);
    }
    out
}

/// Splits options on commas outside double quotes.
fn split_options(s: &str) -> Vec<String> {
    let (mut out, mut current, mut quoted) = (Vec::new(), String::new(), false);
    for c in s.chars() {
        match c {
            ',' if !quoted => out.push(std::mem::take(&mut current)),
            c => {
                quoted ^= c == '"';
                current.push(c);
            }
        }
    }
    out.push(current);
    out.retain(|o| !o.is_empty());
    out
}

/// `YYYYMMDD[HHMM[SS]][Z]` as UTC Unix seconds.
fn parse_time(s: &str) -> Result<i64> {
    let digits = s.trim_end_matches(['Z', 'z']);
    let bad = || anyhow!("bad time \"{s}\": expected YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS");
    if !digits.bytes().all(|b| b.is_ascii_digit()) || ![8, 12, 14].contains(&digits.len()) {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| digits.get(r).map_or(Ok(0), str::parse::<i16>);
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, sec) = (num(8..10)?, num(10..12)?, num(12..14)?);
    let dt = jiff::civil::DateTime::new(y, mo as i8, d as i8, h as i8, mi as i8, sec as i8, 0)
        .map_err(|_| bad())?;
    Ok(dt
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(|_| bad())?
        .timestamp()
        .as_second())
}

/// OpenSSH's pattern match: `*` any run, `?` one character.
fn glob(pattern: &str, s: &str) -> bool {
    match (pattern.chars().next(), s.chars().next()) {
        (None, None) => true,
        (Some('*'), _) => {
            glob(&pattern[1..], s)
                || (!s.is_empty()
                    && glob(pattern, &s[s.chars().next().map_or(0, char::len_utf8)..]))
        }
        (Some('?'), Some(c)) => glob(&pattern[1..], &s[c.len_utf8()..]),
        (Some(p), Some(c)) if p == c => glob(&pattern[p.len_utf8()..], &s[c.len_utf8()..]),
        _ => false,
    }
}

/// Parses armored OpenPGP public keys: one or more blocks, each with one or more keys. Every
/// key's self-signatures must verify.
fn parse_trusted_keys(text: &str) -> Result<Vec<SignedPublicKey>> {
    const BEGIN: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----";
    let mut keys = Vec::new();
    for block in text.split(BEGIN).skip(1) {
        let armored = format!("{BEGIN}{block}");
        let (parsed, _) = SignedPublicKey::from_string_many(&armored)
            .map_err(|e| anyhow!("cannot read an armored public key block: {e}"))?;
        for key in parsed {
            let key = key.map_err(|e| anyhow!("cannot read a public key: {e}"))?;
            key.details.verify_bindings(&key.primary_key).map_err(|e| {
                anyhow!(
                    "the self-signature of key {:X} does not verify: {e}",
                    key.primary_key.fingerprint()
                )
            })?;
            keys.push(key);
        }
    }
    if keys.is_empty() {
        bail!(
            "no armored public key (-----BEGIN PGP PUBLIC KEY BLOCK-----) found; export one with gpg --armor --export"
        );
    }
    Ok(keys)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHxzGkyIVVypkKOX/KdQg8JFaucRBnBz7j3iNkSnO+f0";

    #[test]
    fn allowed_signers_lines_with_and_without_options() {
        let text = format!(
            "# team\n\nalice@example.com {KEY} alice\n\"bob@example.com,carol@example.com\" namespaces=\"git,file\",valid-after=\"20240101\" {KEY}\n"
        );
        let s = parse_allowed_signers(&text).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].principals, "alice@example.com");
        assert!(s[0].namespaces.is_none());
        assert_eq!(s[1].principals, "bob@example.com,carol@example.com");
        assert_eq!(s[1].namespaces.as_deref().unwrap(), ["git", "file"]);
        assert_eq!(s[1].valid_after, Some(1_704_067_200));
        assert!(s[1].permits(1_704_067_200));
        assert!(!s[1].permits(1_704_067_199));
    }

    #[test]
    fn a_namespace_restriction_without_git_refuses() {
        let s = parse_allowed_signers(&format!("a@x namespaces=\"file,mail*\" {KEY}")).unwrap();
        assert!(!s[0].permits(0));
        assert!(
            s[0].refusal(0).contains("namespaces \"file,mail*\""),
            "{}",
            s[0].refusal(0)
        );
        let s = parse_allowed_signers(&format!("a@x namespaces=\"g*\" {KEY}")).unwrap();
        assert!(s[0].permits(0));
    }

    #[test]
    fn bad_lines_name_the_line() {
        let e = parse_allowed_signers(&format!("# c\na@x cert-authority {KEY}")).unwrap_err();
        assert!(
            format!("{e:#}").starts_with("line 2: cert-authority"),
            "{e:#}"
        );
        let e = parse_allowed_signers("a@x ssh-ed25519 notbase64").unwrap_err();
        assert!(
            format!("{e:#}").contains("cannot read the public key"),
            "{e:#}"
        );
        assert!(parse_allowed_signers("# nothing\n").is_err());
    }

    #[test]
    fn times_are_utc() {
        assert_eq!(parse_time("19700101").unwrap(), 0);
        assert_eq!(parse_time("197001010001").unwrap(), 60);
        assert_eq!(parse_time("19700101000001Z").unwrap(), 1);
        assert!(parse_time("2024").is_err());
        assert!(parse_time("20241399").is_err());
    }

    #[test]
    fn globs() {
        assert!(glob("git", "git"));
        assert!(glob("*", "git"));
        assert!(glob("g?t", "git"));
        assert!(!glob("file", "git"));
        assert!(!glob("gi", "git"));
    }

    #[test]
    fn a_tag_splits_at_its_last_signature_line() {
        let raw = b"object 1\ntype commit\ntag v1\n\nmsg\n-----BEGIN SSH SIGNATURE-----\nAAA\n-----END SSH SIGNATURE-----\n";
        let (sig, data) = split_tag(raw).unwrap();
        assert_eq!(data, b"object 1\ntype commit\ntag v1\n\nmsg\n");
        assert!(sig.starts_with(SSH_ARMOR));
        assert!(split_tag(b"object 1\n\nunsigned\n").is_none());
    }

    #[test]
    fn no_trust_at_all_is_an_error() {
        let e = Trust::load(None, None).unwrap_err();
        assert!(e.to_string().contains("--allowed-signers FILE"), "{e}");
    }
}
