//! Real signing keys and signed commits for the `--verify-signatures` tests: SSH keys from
//! `ssh-keygen`, OpenPGP keys from `gpg` in a private GNUPGHOME (its agent is stopped on
//! drop), commits and tags signed by the `git` command itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Keys made in one sandbox folder.
pub struct Keys {
    dir: PathBuf,
    gnupg: PathBuf,
}

/// How a commit or tag is signed.
#[derive(Debug, Clone)]
pub enum Signer {
    /// Not at all.
    None,
    /// By the SSH key whose private half is at this path.
    Ssh(PathBuf),
    /// By the OpenPGP key with this fingerprint.
    Pgp(String),
}

impl Keys {
    /// A key store in `dir` (created).
    pub fn new(dir: &Path) -> Keys {
        let gnupg = dir.join("gnupg");
        std::fs::create_dir_all(&gnupg).expect("cannot create GNUPGHOME");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&gnupg, std::fs::Permissions::from_mode(0o700))
                .expect("cannot make GNUPGHOME private");
        }
        Keys {
            dir: dir.to_path_buf(),
            gnupg,
        }
    }

    /// A new ed25519 SSH key `name` (no passphrase); the signer of it.
    pub fn ssh(&self, name: &str) -> Signer {
        let key = self.dir.join(name);
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&key));
        Signer::Ssh(key)
    }

    /// The `SHA256:…` fingerprint of SSH signer `s`, as ssh-keygen prints it.
    pub fn ssh_fingerprint(&self, s: &Signer) -> String {
        let Signer::Ssh(key) = s else {
            panic!("not an SSH signer")
        };
        let out = run(Command::new("ssh-keygen").arg("-lf").arg(key));
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .expect("ssh-keygen -l prints the fingerprint second")
            .to_owned()
    }

    /// An allowed-signers file listing `signers` (principal, options, SSH signer); its path.
    pub fn allowed_signers(&self, file: &str, signers: &[(&str, &str, &Signer)]) -> PathBuf {
        let mut text = String::from("# who may sign\n");
        for (principal, options, s) in signers {
            let Signer::Ssh(key) = s else {
                panic!("not an SSH signer")
            };
            let public = std::fs::read_to_string(key.with_extension("pub"))
                .expect("ssh-keygen wrote the public key");
            text.push_str(&format!("{principal} {options} {public}"));
        }
        let path = self.dir.join(file);
        std::fs::write(&path, text).expect("cannot write the allowed signers");
        path
    }

    /// A new OpenPGP signing key (ed25519, no passphrase) for `uid`; the signer of it.
    pub fn pgp(&self, uid: &str) -> Signer {
        run(self.gpg().args([
            "--passphrase",
            "",
            "--quick-gen-key",
            uid,
            "ed25519",
            "sign",
            "never",
        ]));
        let out = run(self.gpg().args(["--with-colons", "--list-keys", uid]));
        let listing = String::from_utf8_lossy(&out.stdout);
        let fpr = listing
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .and_then(|l| l.trim_matches(':').split(':').next_back())
            .expect("gpg lists the new key's fingerprint")
            .to_owned();
        Signer::Pgp(fpr)
    }

    /// Adds a signing subkey to OpenPGP signer `s` (gpg then signs with it, not the primary).
    pub fn pgp_signing_subkey(&self, s: &Signer) {
        let Signer::Pgp(fpr) = s else {
            panic!("not an OpenPGP signer")
        };
        run(self.gpg().args([
            "--passphrase",
            "",
            "--quick-add-key",
            fpr,
            "ed25519",
            "sign",
            "never",
        ]));
    }

    /// The armored public keys of `signers` in one file; its path.
    pub fn trusted_keys(&self, file: &str, signers: &[&Signer]) -> PathBuf {
        let mut cmd = self.gpg();
        cmd.args(["--armor", "--export"]);
        for s in signers {
            let Signer::Pgp(fpr) = s else {
                panic!("not an OpenPGP signer")
            };
            cmd.arg(fpr);
        }
        let out = run(&mut cmd);
        let path = self.dir.join(file);
        std::fs::write(&path, out.stdout).expect("cannot write the trusted keys");
        path
    }

    fn gpg(&self) -> Command {
        let mut cmd = Command::new("gpg");
        cmd.env("GNUPGHOME", &self.gnupg)
            .args(["--batch", "--quiet"]);
        cmd
    }

    /// `git args` in `repo` as `signer`: the key and format configured, a fixed identity.
    pub fn git(&self, repo: &Path, signer: &Signer, args: &[&str]) -> Output {
        let mut cmd = Command::new("git");
        cmd.arg("-C").arg(repo);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("GIT_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("GNUPGHOME", &self.gnupg)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", &self.dir)
            .args([
                "-c",
                "user.name=Ward Test",
                "-c",
                "user.email=test@ward.invalid",
            ]);
        match signer {
            Signer::None => {}
            Signer::Ssh(key) => {
                cmd.args(["-c", "gpg.format=ssh", "-c"])
                    .arg(format!("user.signingkey={}", key.display()));
            }
            Signer::Pgp(fpr) => {
                cmd.args(["-c", "gpg.format=openpgp", "-c"])
                    .arg(format!("user.signingkey={fpr}"));
            }
        }
        run(cmd.args(args))
    }

    /// Stages everything in `repo` and commits it, signed by `signer` (unsigned for
    /// [`Signer::None`]); returns the commit id.
    pub fn commit(&self, repo: &Path, signer: &Signer, message: &str) -> String {
        self.git(repo, &Signer::None, &["add", "-A"]);
        let sign = if matches!(signer, Signer::None) {
            "--no-gpg-sign"
        } else {
            "-S"
        };
        self.git(
            repo,
            signer,
            &["commit", "-q", "--allow-empty", sign, "-m", message],
        );
        let out = self.git(repo, &Signer::None, &["rev-parse", "HEAD"]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", &self.gnupg)
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

/// Runs `cmd`; panics with its output when it fails.
fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
